/** The lab's subcommands, in its own module so that `hearsay --help` need not load the lab. */
export const LAB_USAGE = `hearsay lab run [scenario.json] [flags]   run an experiment (results.json,
                                          results.md and plots in --out)
hearsay lab report <dir>                  render a past run's report again
hearsay lab report --compare <a> <b>      lay two runs side by side`
