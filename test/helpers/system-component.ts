// Tests that need a system component (redis-server, chromium, a WebGPU adapter): skipped with the reason where
// the component is missing, but a failure in CI (`CI` set; also `MUSE_REQUIRE_<NAME>`), where .ci/run installs it.

/**
 * `missing`: why the component cannot be used here (undefined when it can). Returns the `skip` value for
 * node:test (false, or the reason with how to install), or throws when the component is required here.
 */
export function skipUnlessAvailable(component: string, missing: string | undefined, install: string): string | false {
  if (!missing) return false;
  const flag = `MUSE_REQUIRE_${component.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`;
  if (process.env.CI || process.env[flag]) {
    throw new Error(
      `the ${component} tests are required here (${process.env.CI ? 'CI is set' : `${flag} is set`}) but ${missing} (${install}; .ci/run installs it)`,
    );
  }
  return `${component}: ${missing} (${install}; .ci/run installs it)`;
}
