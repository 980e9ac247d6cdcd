// The binary starts with JavaScriptCore's tier-up thresholds scaled by JIT_POLICY
// (scripts/build.ts passes it to --compile-jit-policy): what gcr runs before a container
// starts is code that runs once, and compiling it costs more than interpreting it (12 ms of
// a 60 ms `gcr run` here; README, "Start time"). Code that then runs for long (a pull, a
// terminal or port relay, logs -f) calls steady() to get the normal JIT back.
export const JIT_POLICY = 1000;

export function steady(): void {
  Bun.unsafe.setJITPolicy(1);
}
