// Digests (algorithm:hex) and the verifying sink every downloaded byte goes through.
// A digest string reaches the filesystem (blobs/sha256/<hex>), so it is parsed strictly (S02).
import { DigestError } from "../errors.ts";

export { type Digest, parseDigest } from "../oci.ts";
import { type Digest, parseDigest } from "../oci.ts";

export function isDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestOf(data: Uint8Array | string, algorithm: Digest["algorithm"] = "sha256"): string {
  return `${algorithm}:${new Bun.CryptoHasher(algorithm).update(data).digest("hex")}`;
}

/**
 * Hashes and counts bytes as they stream past; `check()` at the end compares against the
 * expected digest and size and throws a DigestError naming algorithm, want, got and bytes.
 * `maxBytes` stops an over-long body early (R07) instead of at the end.
 */
export class Verifier {
  readonly want: string;
  readonly algorithm: Digest["algorithm"];
  private hasher: Bun.CryptoHasher;
  bytes = 0;
  constructor(
    want: string,
    private readonly expectedSize?: number,
    private readonly what = "blob",
  ) {
    this.want = want;
    this.algorithm = parseDigest(want).algorithm;
    this.hasher = new Bun.CryptoHasher(this.algorithm);
  }
  update(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    if (this.expectedSize !== undefined && this.bytes > this.expectedSize) {
      throw new DigestError(this.what, this.want, undefined, this.bytes, `longer than its descriptor size ${this.expectedSize}`);
    }
    this.hasher.update(chunk);
  }
  /** Throws unless the bytes seen hash to `want` (and match the size, when known). */
  check(): void {
    const got = `${this.algorithm}:${this.hasher.digest("hex")}`;
    if (got !== this.want) throw new DigestError(this.what, this.want, got, this.bytes);
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      throw new DigestError(this.what, this.want, got, this.bytes, `size ${this.bytes} differs from descriptor size ${this.expectedSize}`);
    }
  }
}

/** Verify a whole in-memory document (manifests, configs). */
export function verifyBytes(data: Uint8Array, want: string, what: string, size?: number): void {
  const v = new Verifier(want, size, what);
  v.update(data);
  v.check();
}
