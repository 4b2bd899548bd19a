import { crc32, inflateRawSync } from 'node:zlib';
import { BridgeTowerError } from '../../common/errors.js';
import { readFully } from '../../bundle/tensors/read-tensor.js';

/**
 * Reads a zip archive's directory from an open file without touching entry data, so that a
 * multi-gigabyte torch checkpoint (a zip of stored tensor records) opens in milliseconds.
 * Spec: PKWARE APPNOTE.TXT 6.3 (sections 4.3.7 local header, 4.3.12 central header, 4.3.14-16
 * ZIP64 records, 4.5.3 ZIP64 extra field).
 */

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  /** Absolute file offset of the entry's first data byte (after its local header). */
  readonly dataOffset: number;
}

export interface ZipDirectory {
  readonly fileSize: number;
  /** Entries in central-directory order. */
  readonly entries: readonly ZipEntry[];
  readonly byName: ReadonlyMap<string, ZipEntry>;
}

const SIG = {
  local: 0x04034b50,
  central: 0x02014b50,
  eocd: 0x06054b50,
  zip64Eocd: 0x06064b50,
  zip64Locator: 0x07064b50,
} as const;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const ZIP64_EXTRA_ID = 0x0001;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/**
 * Small entries (data.pkl, version, byteorder) are read whole; anything bigger is not a pickle we
 * accept (a state dict's pickle is about 100 bytes per tensor).
 */
export const MAX_INFLATED_ENTRY = 1 << 28;
/**
 * A deflated record may inflate to at most this multiple of its compressed size (plus a little
 * slack for tiny records). Pickles deflate about 3–5×; deflate itself reaches ~1000×, which is how a
 * 0.9 MB record becomes a gigabyte pickle. The compressed size lies inside the file, so this also
 * bounds every inflated record by 16× the file size.
 */
export const MAX_INFLATION_RATIO = 16;
const INFLATION_SLACK = 1 << 16;

export const METHOD_STORED = 0;
export const METHOD_DEFLATED = 8;

/** Why a zip archive is refused: `details.reason` of its E_CHECKPOINT_FORMAT errors. */
export const ZIP_REASONS = {
  truncated: 'the file ends before a record or an entry it announces',
  no_end_record: 'no end-of-central-directory record (not a zip archive, or truncated)',
  bad_zip64: 'ZIP64 records or fields that are missing, misplaced or beyond 2^53',
  multi_disk: 'a multi-disk archive',
  bad_signature: 'a central directory entry without its signature',
  bad_central_directory: 'a central directory entry that runs past the directory',
  bad_local_header: "a local header that is missing, misplaced or names another entry",
  encrypted: 'an encrypted entry',
  unsupported_method: 'a compression method other than stored or deflated',
  duplicate_entry: 'an entry name listed twice',
  size_mismatch: 'sizes that disagree (stored compressed ≠ uncompressed, or inflated ≠ declared)',
  overlap: 'two entries whose bytes overlap',
  compressed_storage: 'a tensor storage that is deflated instead of stored',
  entry_too_large: 'a metadata record too large to read whole',
  inflation_ratio: 'a deflated record that would inflate past its bound (a decompression bomb)',
  bad_deflate: 'deflated data that does not inflate',
  bad_crc: 'an entry whose CRC-32 does not match',
} as const;
export type ZipReason = keyof typeof ZIP_REASONS;
type Fail = (reason: ZipReason, why: string, details?: Record<string, unknown>) => never;

export function isZipMagic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** Reads and cross-checks the central directory and every local header of the zip open at `fd`. */
export function readZipDirectory(fd: number, fileSize: number, label: string): ZipDirectory {
  const fail: Fail = (reason, why, details = {}) => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${label}: ${why}`, { path: label, reason, ...details });
  };
  if (fileSize < EOCD_SIZE) fail('truncated', `${fileSize} bytes is too small to be a zip archive: the file is truncated`);

  // The EOCD record ends the file, followed only by a comment of at most 64 KiB; a ZIP64 locator may
  // sit right before it, so read enough of the tail to hold both.
  const tailLength = Math.min(fileSize, EOCD_SIZE + U16_MAX + ZIP64_LOCATOR_SIZE);
  const tailStart = fileSize - tailLength;
  const tail = readAt(fd, tailStart, tailLength);
  const eocdInTail = findEocd(tail);
  if (eocdInTail < 0) {
    fail('no_end_record', 'no end-of-central-directory record: the file is not a zip archive, or it is truncated');
  }
  const eocdPos = tailStart + eocdInTail;
  const eocd = tail.subarray(eocdInTail);
  const diskNumber = eocd.readUInt16LE(4);
  const cdDisk = eocd.readUInt16LE(6);
  let entryCount = eocd.readUInt16LE(10);
  let cdSize = eocd.readUInt32LE(12);
  let cdOffset = eocd.readUInt32LE(16);
  let cdEnd = eocdPos;

  const locatorPos = eocdPos - ZIP64_LOCATOR_SIZE;
  const hasLocator = locatorPos >= 0 && readAt(fd, locatorPos, 4).readUInt32LE(0) === SIG.zip64Locator;
  if (hasLocator) {
    const locator = readAt(fd, locatorPos, ZIP64_LOCATOR_SIZE);
    const recordPos = readU64(locator, 8, 'ZIP64 end-of-central-directory offset', fail);
    if (recordPos + ZIP64_EOCD_MIN > locatorPos) {
      fail('bad_zip64', `ZIP64 locator points to offset ${recordPos}, past the locator itself at ${locatorPos}`);
    }
    const record = readAt(fd, recordPos, ZIP64_EOCD_MIN);
    if (record.readUInt32LE(0) !== SIG.zip64Eocd) fail('bad_zip64', `no ZIP64 end-of-central-directory record at offset ${recordPos}`);
    if (record.readUInt32LE(16) !== 0 || record.readUInt32LE(20) !== 0) fail('multi_disk', 'multi-disk zip archives are not supported');
    entryCount = readU64(record, 32, 'ZIP64 entry count', fail);
    cdSize = readU64(record, 40, 'ZIP64 central directory size', fail);
    cdOffset = readU64(record, 48, 'ZIP64 central directory offset', fail);
    cdEnd = recordPos;
  } else if (entryCount === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    fail('bad_zip64', 'the end-of-central-directory record asks for ZIP64 values, but there is no ZIP64 locator');
  } else if (diskNumber !== 0 || cdDisk !== 0) {
    fail('multi_disk', 'multi-disk zip archives are not supported');
  }
  if (cdOffset + cdSize > cdEnd) {
    fail(
      'truncated',
      `central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record at ${cdEnd}: ` +
        'the file is truncated or corrupt',
      { cdOffset, cdSize },
    );
  }

  const cd = readAt(fd, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  const byName = new Map<string, ZipEntry>();
  let pos = 0;
  for (let i = 0; i < entryCount; i++) {
    if (pos + CENTRAL_SIZE > cd.length || cd.readUInt32LE(pos) !== SIG.central) {
      fail('bad_signature', `central directory entry ${i} of ${entryCount} at offset ${cdOffset + pos} has a bad signature`);
    }
    const flags = cd.readUInt16LE(pos + 8);
    const method = cd.readUInt16LE(pos + 10);
    const crc = cd.readUInt32LE(pos + 16);
    let compressedSize = cd.readUInt32LE(pos + 20);
    let uncompressedSize = cd.readUInt32LE(pos + 24);
    const nameLength = cd.readUInt16LE(pos + 28);
    const extraLength = cd.readUInt16LE(pos + 30);
    const commentLength = cd.readUInt16LE(pos + 32);
    let localHeaderOffset = cd.readUInt32LE(pos + 42);
    const end = pos + CENTRAL_SIZE + nameLength + extraLength + commentLength;
    if (end > cd.length) fail('bad_central_directory', `central directory entry ${i} runs past the end of the central directory`);
    const name = cd.toString('utf8', pos + CENTRAL_SIZE, pos + CENTRAL_SIZE + nameLength);
    if (flags & 1) fail('encrypted', `entry '${name}' is encrypted`, { entry: name });

    // The ZIP64 extra field holds, in this order, only the fields whose 32-bit value is saturated.
    const extra = cd.subarray(pos + CENTRAL_SIZE + nameLength, pos + CENTRAL_SIZE + nameLength + extraLength);
    const zip64 = findExtraField(extra, ZIP64_EXTRA_ID);
    let z = 0;
    const next64 = (what: string): number => {
      if (!zip64 || z + 8 > zip64.length) fail('bad_zip64', `entry '${name}': ${what} needs a ZIP64 extra field, which is missing or short`);
      const value = readU64(zip64!, z, `${name} ${what}`, fail);
      z += 8;
      return value;
    };
    if (uncompressedSize === U32_MAX) uncompressedSize = next64('uncompressed size');
    if (compressedSize === U32_MAX) compressedSize = next64('compressed size');
    if (localHeaderOffset === U32_MAX) localHeaderOffset = next64('local header offset');
    if (method !== METHOD_STORED && method !== METHOD_DEFLATED) {
      fail('unsupported_method', `entry '${name}' uses compression method ${method}; only stored (0) and deflated (8) are supported`, { entry: name });
    }
    if (byName.has(name)) fail('duplicate_entry', `entry '${name}' appears twice in the central directory`, { entry: name });
    const dataOffset = localDataOffset(fd, name, localHeaderOffset, cdOffset, fail);
    if (dataOffset + compressedSize > cdOffset) {
      fail(
        'truncated',
        `entry '${name}' (${compressedSize} bytes at offset ${dataOffset}) runs past the start of the central directory ` +
          `at ${cdOffset}: the file is truncated or corrupt`,
        { entry: name },
      );
    }
    if (method === METHOD_STORED && compressedSize !== uncompressedSize) {
      fail('size_mismatch', `stored entry '${name}' has compressed size ${compressedSize} ≠ uncompressed size ${uncompressedSize}`);
    }
    const entry = { name, method, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset, dataOffset };
    entries.push(entry);
    byName.set(name, entry);
    pos = end;
  }
  checkNoOverlap(entries, fail);
  return { fileSize, entries, byName };
}

/** The byte range of a stored entry: tensor storages are addressed in place, never copied. */
export function storedEntryRange(entry: ZipEntry, label: string): { offset: number; length: number } {
  if (entry.method !== METHOD_STORED) {
    throw new BridgeTowerError(
      'E_CHECKPOINT_FORMAT',
      `${label}: record '${entry.name}' is deflated, but tensor storages must be stored uncompressed ` +
        '(as torch.save writes them); re-save the checkpoint with torch.save',
      { path: label, reason: 'compressed_storage' satisfies ZipReason, entry: entry.name, method: entry.method },
    );
  }
  return { offset: entry.dataOffset, length: entry.uncompressedSize };
}

/** Reads a small entry whole (inflating it if deflated) and checks its CRC. */
export function readSmallEntry(fd: number, entry: ZipEntry, label: string): Buffer {
  const fail = (reason: ZipReason, why: string): never => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${label}: record '${entry.name}' ${why}`, { path: label, reason, entry: entry.name });
  };
  if (entry.uncompressedSize > MAX_INFLATED_ENTRY) fail('entry_too_large', `is ${entry.uncompressedSize} bytes, too large to be a metadata record`);
  const inflationLimit = MAX_INFLATION_RATIO * entry.compressedSize + INFLATION_SLACK;
  if (entry.method === METHOD_DEFLATED && entry.uncompressedSize > inflationLimit) {
    fail(
      'inflation_ratio',
      `would inflate ${entry.compressedSize} bytes to ${entry.uncompressedSize}, more than ${MAX_INFLATION_RATIO}× (a decompression bomb, ` +
        'or a corrupt directory); re-save the checkpoint with torch.save, which stores records uncompressed',
    );
  }
  const raw = readAt(fd, entry.dataOffset, entry.compressedSize);
  let data = raw;
  if (entry.method === METHOD_DEFLATED) {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (err) {
      fail('bad_deflate', `does not inflate: ${(err as Error).message}`);
    }
  }
  if (data.length !== entry.uncompressedSize) fail('size_mismatch', `holds ${data.length} bytes, but the directory says ${entry.uncompressedSize}`);
  if (crc32(data) >>> 0 !== entry.crc32) fail('bad_crc', 'fails its CRC-32 check: the file is corrupt');
  return data;
}

/** Reads `length` bytes at `position`; a short read is a truncated file. */
export function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  readFully(fd, buffer, position);
  return buffer;
}

function findEocd(tail: Buffer): number {
  // Scan backwards: the last record whose comment length reaches exactly the end of the file wins;
  // a signature inside a comment cannot satisfy that.
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG.eocd && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tail.length) return i;
  }
  return -1;
}

function localDataOffset(
  fd: number,
  name: string,
  offset: number,
  cdOffset: number,
  fail: Fail,
): number {
  if (offset + LOCAL_SIZE > cdOffset) {
    fail('bad_local_header', `entry '${name}' has its local header at offset ${offset}, past the central directory at ${cdOffset}`, { entry: name });
  }
  const header = readAt(fd, offset, LOCAL_SIZE);
  if (header.readUInt32LE(0) !== SIG.local) fail('bad_local_header', `entry '${name}': no local file header at offset ${offset}`, { entry: name });
  const nameLength = header.readUInt16LE(26);
  const extraLength = header.readUInt16LE(28);
  if (offset + LOCAL_SIZE + nameLength > cdOffset) fail('bad_local_header', `entry '${name}': local header runs into the central directory`);
  const localName = readAt(fd, offset + LOCAL_SIZE, nameLength).toString('utf8');
  if (localName !== name) {
    fail('bad_local_header', `entry '${name}': its local header names '${localName}': the central directory is corrupt`, { entry: name });
  }
  return offset + LOCAL_SIZE + nameLength + extraLength;
}

function checkNoOverlap(entries: readonly ZipEntry[], fail: Fail): void {
  const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.dataOffset + prev.compressedSize > cur.localHeaderOffset) {
      fail('overlap', `entries '${prev.name}' and '${cur.name}' overlap: the central directory is corrupt`);
    }
  }
}

function findExtraField(extra: Buffer, id: number): Buffer | undefined {
  for (let p = 0; p + 4 <= extra.length; ) {
    const fieldId = extra.readUInt16LE(p);
    const size = extra.readUInt16LE(p + 2);
    if (fieldId === id) return extra.subarray(p + 4, Math.min(extra.length, p + 4 + size));
    p += 4 + size;
  }
  return undefined;
}

function readU64(buffer: Buffer, offset: number, what: string, fail: Fail): number {
  const value = buffer.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail('bad_zip64', `${what} ${value} is beyond 2^53: the file is corrupt`);
  return Number(value);
}
