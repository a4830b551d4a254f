/** Resource tags shared by every taggable resource (key pairs now, instances next). */
export { MAX_TAGS_PER_RESOURCE, validateTagFilters, validateTags, type Tag, type TagFilter } from './tags.js';
