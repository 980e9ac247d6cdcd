// OCI image-spec and distribution types shared by `run` and `img2rootfs`. No I/O here.
// run/ and img2rootfs/ never import each other; they meet in this file and in store.ts.

/** The runtime part of an image config ("config" in the OCI config blob). */
export interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  StopSignal?: string;
}
