/**
 * Resource names (ARNs) in Alibaba Cloud's form, `acs:{service}:{region}:{account}:{type}/{id}`, as
 * policies' `Resource` patterns match them. RAM resources are global: their region is `*`. List and
 * describe actions authorize on the region's wildcard resource (`keyPair(region, account, '*')`).
 */
export const arn = {
  keyPair: (region: string, account: string, name: string): string =>
    `acs:ecs:${region}:${account}:keypair/${name}`,
  instance: (region: string, account: string, id: string): string =>
    `acs:ecs:${region}:${account}:instance/${id}`,
  workbench: (region: string, account: string, instanceId: string): string =>
    `acs:ecs-workbench:${region}:${account}:workbench/${instanceId}`,
  user: (account: string, name: string): string => `acs:ram:*:${account}:user/${name}`,
  policy: (account: string, name: string): string => `acs:ram:*:${account}:policy/${name}`,
  /** A built-in policy: owned by `system`, as RAM names them. */
  systemPolicy: (name: string): string => `acs:ram:*:system:policy/${name}`,
  mfaDevice: (account: string, name: string): string => `acs:ram:*:${account}:mfa/${name}`,
} as const;
