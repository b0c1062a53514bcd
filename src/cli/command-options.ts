import { asError } from "../errors.js";

/**
 * A command's parsed options, or its exit code: 0 once `--help` printed the usage, 2 after a usage
 * error (printed with the usage, on stderr).
 */
export function commandOptions<T extends { help?: boolean }>(
  command: string,
  args: string[],
  parse: (args: string[]) => T,
  usage: string,
): T | number {
  let options: T;
  try {
    options = parse(args);
  } catch (error) {
    console.error(`tiercache ${command}: ${asError(error).message}\n\n${usage}`);
    return 2;
  }
  if (options.help) {
    console.log(usage);
    return 0;
  }
  return options;
}
