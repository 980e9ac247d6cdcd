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

// ---- media types (image-spec, distribution; Docker's v2 equivalents) ----

export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondist: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociLayerNondistZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeign: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** What a manifest GET asks for, so registries never down-convert to schema1 (R16). */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerList,
  MediaType.dockerManifest,
].join(", ");

export type Compression = "gzip" | "zstd" | "none";

/** The compression a layer media type declares, or undefined when it is not a layer gcr can apply. */
export function layerCompression(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.ociLayer:
    case MediaType.ociLayerNondist:
      return "none";
    case MediaType.ociLayerGzip:
    case MediaType.ociLayerNondistGzip:
    case MediaType.dockerLayerGzip:
    case MediaType.dockerLayerForeign:
      return "gzip";
    case MediaType.ociLayerZstd:
    case MediaType.ociLayerNondistZstd:
      return "zstd";
    default:
      return undefined;
  }
}

export function isIndex(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerList;
}
export function isManifest(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The config blob: platform, the runtime config, and the diff_ids the layers must unpack to. */
export interface ImageConfigBlob {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: ImageConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

// ---- digests: they reach the filesystem (blobs/sha256/<hex>), so they are parsed strictly (S02) ----

export interface Digest {
  algorithm: "sha256" | "sha512";
  hex: string;
}

const HEX_LEN = { sha256: 64, sha512: 128 } as const;

export function parseDigest(s: string): Digest {
  const i = s.indexOf(":");
  const algorithm = s.slice(0, i);
  const hex = s.slice(i + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") throw new Error(`unsupported digest algorithm in '${s}'`);
  if (hex.length !== HEX_LEN[algorithm] || !/^[0-9a-f]+$/.test(hex)) throw new Error(`malformed digest '${s}'`);
  return { algorithm, hex };
}

