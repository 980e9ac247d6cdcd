// Choosing the image for a platform out of an index / manifest list (image-index.md, R04).
// Pure: no I/O.
import { UsageError } from "../errors.ts";
import { type Descriptor, type Index, type Manifest, type Platform, MediaType, isIndex, isManifest } from "../oci.ts";
import { GcrError } from "../errors.ts";

const ARCH: Record<string, string> = { x64: "amd64", x86_64: "amd64", arm64: "arm64", aarch64: "arm64", ia32: "386", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

/** normalise as containerd's platforms package does: x86_64 -> amd64, aarch64 -> arm64, arm64/v8 = arm64. */
export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH[p.architecture] ?? p.architecture;
  let variant = p.variant || undefined;
  if (architecture === "arm64" && variant === "v8") variant = undefined;
  if (architecture === "amd64" && variant === "v1") variant = undefined;
  if (architecture === "arm" && !variant) variant = "v7";
  return { os: p.os, architecture, variant };
}

export function hostPlatform(): Platform {
  return normalizePlatform({ os: "linux", architecture: process.arch });
}

/** "os/arch[/variant]" */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new UsageError(`invalid platform '${s}': expected os/arch[/variant], e.g. linux/arm64`, "pull");
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

function matches(want: Platform, got: Platform | undefined): boolean {
  if (!got) return false;
  const g = normalizePlatform(got);
  return g.os === want.os && g.architecture === want.architecture && (want.variant ?? "") === (g.variant ?? "");
}

/**
 * The first manifest in the index for `want`. Entries that are not image manifests (attestations,
 * unknown media types) are skipped, as the spec requires. No match -> an error listing what exists.
 */
export function selectPlatform(index: Index, want: Platform, ref: string): Descriptor {
  const candidates = index.manifests.filter(
    (d) => (isManifest(d.mediaType) || isIndex(d.mediaType)) && d.platform && d.platform.os !== "unknown" && d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest",
  );
  const hit = candidates.find((d) => matches(want, d.platform));
  if (hit) return hit;
  const available = [...new Set(candidates.map((d) => formatPlatform(normalizePlatform(d.platform!))))];
  throw new GcrError(`no matching manifest for ${formatPlatform(want)} in ${ref}`, {
    hint: available.length ? `available platforms: ${available.join(", ")} (choose with --platform)` : "the index lists no image manifests",
  });
}

/** Parse a manifest-ish document and decide what it is; rejects ambiguous and schema1 documents (R05). */
export function parseDocument(bytes: Uint8Array, contentType: string): { kind: "index"; index: Index } | { kind: "manifest"; manifest: Manifest } {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new GcrError(`registry sent a manifest that is not JSON (Content-Type ${contentType || "none"})`);
  }
  if (typeof doc !== "object" || doc === null) throw new GcrError("manifest is not a JSON object");
  const mt = (typeof doc.mediaType === "string" ? doc.mediaType : undefined) ?? contentType;
  if (mt === MediaType.dockerSchema1 || mt === MediaType.dockerSchema1Signed || doc.schemaVersion === 1) {
    throw new GcrError("unsupported manifest: Docker schema 1 is obsolete", { hint: "re-push the image with a current tool" });
  }
  const hasManifests = Array.isArray(doc.manifests);
  const hasLayers = Array.isArray(doc.layers) || typeof doc.config === "object";
  if (hasManifests && hasLayers) throw new GcrError("ambiguous manifest: has both 'manifests' and 'layers'/'config'");
  if (doc.schemaVersion !== 2) throw new GcrError(`unsupported manifest schemaVersion ${String(doc.schemaVersion)}`);
  if (hasManifests) {
    if (doc.mediaType !== undefined && !isIndex(mt)) throw new GcrError(`index has mediaType ${mt}`);
    return { kind: "index", index: doc as unknown as Index };
  }
  if (hasLayers) {
    if (doc.mediaType !== undefined && !isManifest(mt)) throw new GcrError(`manifest has unsupported mediaType ${mt}`);
    const m = doc as unknown as Manifest;
    if (!m.config || !Array.isArray(m.layers)) throw new GcrError("manifest lacks config or layers");
    return { kind: "manifest", manifest: m };
  }
  throw new GcrError(`unsupported manifest (mediaType ${mt || "none"})`);
}
