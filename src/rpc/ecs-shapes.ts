/**
 * Response and request pieces every ECS-style action shares: the two time forms, the `Tags.Tag[]` shape,
 * and DescribeX paging (PageNumber ≥ 1; a page past the end is an empty page, as in ECS).
 */
import type { Tag } from '../tags/index.js';
import type { ParamReader } from './rpc-params.js';

/** ECS CreationTime form: `yyyy-MM-ddTHH:mmZ` (UTC, minutes). */
export function ecsTime(iso: string): string {
  return `${iso.slice(0, 16)}Z`;
}

/** `yyyy-MM-ddTHH:mm:ssZ` (UTC, seconds): RAM's CreateDate form, and ECS times where minutes are too coarse. */
export function ecsTimeSeconds(iso: string): string {
  return `${iso.slice(0, 19)}Z`;
}

/** ECS `Tags: { Tag: [{ TagKey, TagValue }] }`. */
export function tagsView(tags: readonly Tag[]): { Tag: Array<{ TagKey: string; TagValue: string }> } {
  return { Tag: tags.map((t) => ({ TagKey: t.key, TagValue: t.value })) };
}

/** Reads PageNumber and PageSize; the PageNumber bound only keeps the offset arithmetic sane. */
export function readPaging(
  params: ParamReader,
  pageSize: { max: number; fallback: number },
): { pageNumber: number; pageSize: number } {
  return {
    pageNumber: params.integer('PageNumber', { min: 1, max: 100_000_000, fallback: 1 }),
    pageSize: params.integer('PageSize', { min: 1, max: pageSize.max, fallback: pageSize.fallback }),
  };
}
