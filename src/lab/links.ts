import type { LabNetwork, LabNetworkInit } from './types.ts'

/** Builds the links of a process run. */
export async function createLabNetwork(_init: LabNetworkInit): Promise<LabNetwork> {
  throw new Error('link emulation is not built yet')
}
