/**
 * What the CLI's list commands share: walking every page of an ECS Describe* action, and showing ECS
 * `Tags.Tag[]` as `key=value,…`.
 */
import type { RpcClient } from '../../client/index.js';

/** ECS `Tags` as returned in listings. */
export interface EcsTags {
  readonly Tag?: ReadonlyArray<{ readonly TagKey: string; readonly TagValue: string }>;
}

/** `key=value,…` (a tag with an empty value shows as its key alone). */
export function tagsText(tags: EcsTags | undefined): string {
  return (tags?.Tag ?? []).map((t) => (t.TagValue === '' ? t.TagKey : `${t.TagKey}=${t.TagValue}`)).join(',');
}

/**
 * Calls `action` page by page with `params` until every item is fetched; `items` picks the list out of
 * one answer (e.g. `r => r.KeyPairs.KeyPair`).
 */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- R types the answer the caller's picker reads
export async function describeAllPages<R extends { TotalCount: number | string }, T>(
  client: RpcClient,
  action: string,
  params: Readonly<Record<string, string | number | boolean>>,
  pageSize: number,
  items: (response: R) => readonly T[],
): Promise<T[]> {
  const all: T[] = [];
  for (let page = 1; ; page++) {
    const res = await client.call<R>(action, { ...params, PageNumber: page, PageSize: pageSize });
    const got = items(res);
    all.push(...got);
    if (got.length < pageSize || all.length >= Number(res.TotalCount)) return all;
  }
}
