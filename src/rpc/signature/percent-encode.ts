/**
 * RFC 3986 percent-encoding as the ACS3 and v1 signatures define it.
 *
 * Only the unreserved characters `A-Z a-z 0-9 - _ . ~` stay literal; every other character becomes `%XX` of
 * its UTF-8 bytes, with upper-case hex. So a space is `%20` (never `+`) and `! ' ( ) *`, which
 * `encodeURIComponent` leaves alone, become `%21 %27 %28 %29 %2A`. This is exactly openapi-core's
 * `encode()`, used by both signature schemes and by our own client for the wire query.
 */

const SUB_DELIMS_LEFT_BY_ENCODE_URI_COMPONENT = /[!'()*]/g;

function hexEscape(char: string): string {
  return `%${char.charCodeAt(0).toString(16).toUpperCase()}`;
}

/**
 * Percent-encodes `value` per RFC 3986 (unreserved characters literal, everything else `%XX` of UTF-8).
 *
 * @throws URIError when `value` holds a lone UTF-16 surrogate, which has no UTF-8 form (a caller's bug:
 *   such a string cannot be signed or sent faithfully).
 */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(SUB_DELIMS_LEFT_BY_ENCODE_URI_COMPONENT, hexEscape);
}
