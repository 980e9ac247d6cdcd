// The image store: where `gcr pull` puts images and where `gcr run NAME` finds them.
// This is the ONE place that maps an image name to a root filesystem and its config.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ImageConfig } from "./oci.ts";
import { dataDir } from "./paths.ts";

export interface StoredImage {
  name: string;
  /** Absolute path of the unpacked root filesystem (read-only for containers). */
  rootfs: string;
  config: ImageConfig;
}

/** Image names are single path-safe tokens so they can never escape the store. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9_.-]{0,127}$/;

export function imageDir(name: string): string {
  return join(dataDir(), "images", name);
}

/** The stored image called `name`, or undefined. */
export function findImage(name: string): StoredImage | undefined {
  if (!IMAGE_NAME.test(name)) return undefined;
  const dir = imageDir(name);
  const meta = join(dir, "image.json");
  if (!existsSync(meta)) return undefined;
  const record = JSON.parse(readFileSync(meta, "utf8")) as { config?: { config?: ImageConfig } };
  return { name, rootfs: join(dir, "rootfs"), config: record.config?.config ?? {} };
}
