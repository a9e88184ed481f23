/** Writes report.md and the SVG plots of the results in `dir` (its results.json) into `dir`. */
export async function renderReport(_dir: string): Promise<{ markdown: string; files: string[] }> {
  throw new Error('lab reports are not built yet')
}

/** Lays two runs side by side: writes compare.md and plots into `outDir`. */
export async function compareResults(
  _dirA: string,
  _dirB: string,
  _outDir: string,
): Promise<{ markdown: string; files: string[] }> {
  throw new Error('lab reports are not built yet')
}
