import type { LabProgress, LabShape, RunResult, Scenario } from './types.ts'

/** Runs one shape with n peers inside this process. */
export async function runInProcess(
  _scenario: Scenario,
  _shape: LabShape,
  _n: number,
  _progress: LabProgress,
): Promise<RunResult> {
  throw new Error('the in-process lab is not built yet')
}
