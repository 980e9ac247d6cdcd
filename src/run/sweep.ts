// One entry point for "tidy up after dead containers": importing the resource modules
// registers their sweepers (cgroups, network) with container.ts before the sweep runs.
import "./cgroups/resource.ts";
import "./network/index.ts";
import { sweepStale } from "./container.ts";

export function sweep(): void {
  sweepStale();
}
