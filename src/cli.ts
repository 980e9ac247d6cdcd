// A small docker-style option parser: flags come before the first positional argument and
// everything from there on is passed through verbatim (`gcr run -it img sh -c 'ls -l'`).
// Short flags combine (`-it`), values may be attached (`-eK=V`, `--env=K=V`) or separate.
import { UsageError } from "./errors.ts";

export interface OptionSpec {
  /** Long name without dashes, e.g. "env". */
  name: string;
  short?: string;
  /** boolean: a switch; string: last value wins; list: every value, in order. */
  type: "boolean" | "string" | "list";
  help: string;
  /** Shown in --help for value options, e.g. "K=V". */
  arg?: string;
  aliases?: string[];
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  rest: string[];
  help: boolean;
}

export function parseOptions(command: string, argv: string[], specs: OptionSpec[], opts: { stopAtPositional: boolean }): Parsed {
  const byLong = new Map<string, OptionSpec>();
  const byShort = new Map<string, OptionSpec>();
  for (const s of specs) {
    byLong.set(s.name, s);
    for (const a of s.aliases ?? []) byLong.set(a, s);
    if (s.short) byShort.set(s.short, s);
  }
  const values: Parsed["values"] = {};
  const rest: string[] = [];
  let help = false;
  const set = (spec: OptionSpec, value: string | true) => {
    if (spec.type === "boolean") values[spec.name] = value === true ? true : !/^(false|0|no)$/i.test(value);
    else if (spec.type === "string") values[spec.name] = String(value);
    else ((values[spec.name] ??= []) as string[]).push(String(value));
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a === "--help") {
      help = true;
      continue;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`, command);
      if (spec.type === "boolean") set(spec, eq < 0 ? true : a.slice(eq + 1));
      else if (eq >= 0) set(spec, a.slice(eq + 1));
      else {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: --${name}`, command);
        set(spec, v);
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const spec = byShort.get(a[j]!);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${a[j]}' in ${a}`, command);
        if (spec.type === "boolean") {
          set(spec, true);
          continue;
        }
        let v: string | undefined = a.slice(j + 1);
        if (v.startsWith("=")) v = v.slice(1);
        if (v === "") v = argv[++i];
        if (v === undefined) throw new UsageError(`flag needs an argument: '${a[j]}' in ${a}`, command);
        set(spec, v);
        break;
      }
      continue;
    }
    if (opts.stopAtPositional) {
      rest.push(...argv.slice(i));
      break;
    }
    rest.push(a);
  }
  return { values, rest, help };
}

/** --help text for a command from its option specs. */
export function helpText(usage: string, summary: string, specs: OptionSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.arg ? ` ${s.arg}` : ""}`;
    return [flag, s.help] as const;
  });
  const w = Math.max(...rows.map(([f]) => f.length));
  return `Usage: ${usage}\n\n${summary}\n\nOptions:\n${rows.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`).join("\n")}\n`;
}
