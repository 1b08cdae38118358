#!/usr/bin/env node
// Generates TypeScript codecs from proto/**/*.proto into src/gen/.
//
// protobufjs parses the .proto files here, at build time only; the generated
// code depends on nothing but src/proto/wire.ts, so the shim never parses a
// .proto file or loads protobufjs at run time. One module per proto package.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const protobuf = require("protobufjs");

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const protoDir = path.join(repo, "proto");
const outDir = path.join(repo, "src", "gen");

function listProtos(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listProtos(p));
    else if (e.name.endsWith(".proto")) out.push(p);
  }
  return out.sort();
}

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoDir, target));
const files = listProtos(protoDir);
root.loadSync(files, { keepCase: true });
root.resolveAll();

// ---- naming -----------------------------------------------------------------

/** snake_case → camelCase; other letters are kept, so Go-style names (OOMScoreAdj) stay as upstream spells them. */
function camel(name) {
  return name.replace(/_([a-zA-Z0-9])/g, (_, c) => c.toUpperCase());
}

function packageOf(t) {
  const parts = [];
  let p = t.parent;
  while (p && !(p instanceof protobuf.Root)) {
    if (p instanceof protobuf.Namespace && !(p instanceof protobuf.Type)) parts.unshift(p.name);
    p = p.parent;
  }
  return parts.join(".");
}

/** Name inside its package module: nested types are joined with "_". */
function localName(t) {
  const parts = [t.name];
  let p = t.parent;
  while (p instanceof protobuf.Type) {
    parts.unshift(p.name);
    p = p.parent;
  }
  return parts.join("_");
}

function fullName(t) {
  return t.fullName.replace(/^\./, "");
}

function moduleAlias(pkg) {
  return pkg.replace(/\./g, "_");
}

// ---- collect ------------------------------------------------------------------

const packages = new Map(); // pkg -> { types: [], enums: [], services: [], deps: Set }

function pkgEntry(pkg) {
  if (!packages.has(pkg)) packages.set(pkg, { types: [], enums: [], services: [], deps: new Set() });
  return packages.get(pkg);
}

function walk(ns) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      pkgEntry(packageOf(nested)).types.push(nested);
      walk(nested);
    } else if (nested instanceof protobuf.Enum) {
      pkgEntry(packageOf(nested)).enums.push(nested);
    } else if (nested instanceof protobuf.Service) {
      pkgEntry(packageOf(nested)).services.push(nested);
    } else if (nested instanceof protobuf.Namespace) {
      walk(nested);
    }
  }
}
walk(root);

// ---- scalar tables -------------------------------------------------------------

const SCALARS = {
  double: { ts: "number", wt: 1, rd: "double", wr: "double", def: "0" },
  float: { ts: "number", wt: 5, rd: "float", wr: "float", def: "0" },
  int64: { ts: "number", wt: 0, rd: "int64", wr: "int64", def: "0" },
  uint64: { ts: "number", wt: 0, rd: "uint64", wr: "uint64", def: "0" },
  int32: { ts: "number", wt: 0, rd: "int32", wr: "int32", def: "0" },
  fixed64: { ts: "number", wt: 1, rd: "fixed64", wr: "fixed64", def: "0" },
  fixed32: { ts: "number", wt: 5, rd: "fixed32", wr: "fixed32", def: "0" },
  bool: { ts: "boolean", wt: 0, rd: "bool", wr: "bool", def: "false" },
  string: { ts: "string", wt: 2, rd: "string", wr: "string", def: '""' },
  bytes: { ts: "Buffer", tsIn: "Uint8Array", wt: 2, rd: "bytes", wr: "bytes", def: "EMPTY_BYTES" },
  uint32: { ts: "number", wt: 0, rd: "uint32", wr: "uint32", def: "0" },
  sfixed32: { ts: "number", wt: 5, rd: "sfixed32", wr: "sfixed32", def: "0" },
  sfixed64: { ts: "number", wt: 1, rd: "sfixed64", wr: "sfixed64", def: "0" },
  sint32: { ts: "number", wt: 0, rd: "sint32", wr: "sint32", def: "0" },
  sint64: { ts: "number", wt: 0, rd: "sint64", wr: "sint64", def: "0" },
};

function refName(fromPkg, t) {
  const pkg = packageOf(t);
  const name = localName(t);
  if (pkg === fromPkg) return name;
  pkgEntry(fromPkg).deps.add(pkg);
  return `${moduleAlias(pkg)}.${name}`;
}

function fieldKind(fromPkg, f) {
  if (SCALARS[f.type]) return { kind: "scalar", s: SCALARS[f.type] };
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Enum) return { kind: "enum", s: SCALARS.int32, ref: refName(fromPkg, rt) };
  if (rt instanceof protobuf.Type) return { kind: "message", ref: refName(fromPkg, rt) };
  throw new Error(`unresolved type ${f.type} in ${f.fullName}`);
}

const TAG = (no, wt) => ((no << 3) | wt) >>> 0;

// ---- emit ------------------------------------------------------------------------

function emitEnum(pkg, e) {
  const name = localName(e);
  const lines = [];
  lines.push(`/** ${fullName(e)} */`);
  lines.push(`export const ${name} = {`);
  for (const [k, v] of Object.entries(e.values)) lines.push(`  ${k}: ${v},`);
  lines.push(`} as const;`);
  lines.push(`export type ${name} = number;`);
  lines.push(`export const ${name}_names: Record<number, string> = {`);
  for (const [k, v] of Object.entries(e.values)) lines.push(`  ${v}: ${JSON.stringify(k)},`);
  lines.push(`};`);
  return lines.join("\n");
}

function emitType(pkg, t) {
  const name = localName(t);
  const fields = t.fieldsArray.slice().sort((a, b) => a.id - b.id);
  const iface = [];
  const init = [];
  const defaults = [];
  const writes = [];
  const cases = [];
  const meta = [];

  for (const f of fields) {
    const js = camel(f.name);
    const hasPresence = !!f.partOf; // oneof members and proto3 `optional`
    if (f.map) {
      const keyS = SCALARS[f.keyType];
      const vk = fieldKind(pkg, f);
      const vTs = vk.kind === "message" ? vk.ref : vk.kind === "enum" ? "number" : vk.s.ts;
      const vTsIn = vk.kind === "message" ? `${vk.ref}Init` : vk.kind === "enum" ? "number" : vk.s.tsIn ?? vk.s.ts;
      iface.push(`  ${js}: Record<string, ${vTs}>;`);
      init.push(`  ${js}?: Record<string, ${vTsIn}>;`);
      defaults.push(`${js}: {}`);
      const keyWr = keyS.wr;
      let valWrite;
      let valRead;
      let valDef;
      if (vk.kind === "message") {
        valWrite = `w.uint32(${TAG(2, 2)}); const a2 = w.fork(); ${vk.ref}.write(v, w); w.ldelim(a2);`;
        valRead = `case ${TAG(2, 2)}: v = readNested(r, ${vk.ref}); break;`;
        valDef = `${vk.ref}.create()`;
      } else {
        const s = vk.s;
        valWrite = `w.uint32(${TAG(2, s.wt)}); w.${s.wr}(v as never);`;
        valRead = `case ${TAG(2, s.wt)}: v = r.${s.rd}(); break;`;
        valDef = s.def;
      }
      writes.push(
        `  if (m.${js}) for (const k of Object.keys(m.${js})) { const v = m.${js}[k]; w.uint32(${TAG(f.id, 2)}); const a = w.fork(); w.uint32(${TAG(1, keyS.wt)}); w.${keyWr}(k as never); ${valWrite} w.ldelim(a); }`,
      );
      cases.push(
        `      case ${TAG(f.id, 2)}: { const e = r.delimited(); const saved = r.end; r.end = e; let k: ${keyS.ts} = ${keyS.def}; let v: ${vTs} = ${valDef}; while (r.pos < e) { const t2 = readTag(r); switch (t2) { case ${TAG(1, keyS.wt)}: k = r.${keyS.rd}(); break; ${valRead} default: r.skip(t2 & 7, t2 >>> 3); } } r.end = saved; m.${js}[String(k)] = v; break; }`,
      );
      meta.push(`{ name: ${JSON.stringify(js)}, no: ${f.id}, type: ${JSON.stringify(f.type)}, map: true }`);
      continue;
    }
    const k = fieldKind(pkg, f);
    const repeated = f.repeated;
    if (k.kind === "message") {
      if (repeated) {
        iface.push(`  ${js}: ${k.ref}[];`);
        init.push(`  ${js}?: ${k.ref}Init[];`);
        defaults.push(`${js}: []`);
        writes.push(`  if (m.${js}) for (const v of m.${js}) { w.uint32(${TAG(f.id, 2)}); const a = w.fork(); ${k.ref}.write(v, w); w.ldelim(a); }`);
        cases.push(`      case ${TAG(f.id, 2)}: m.${js}.push(readNested(r, ${k.ref})); break;`);
      } else {
        iface.push(`  ${js}?: ${k.ref};`);
        init.push(`  ${js}?: ${k.ref}Init;`);
        defaults.push(`${js}: undefined`);
        writes.push(`  if (m.${js} !== undefined && m.${js} !== null) { w.uint32(${TAG(f.id, 2)}); const a = w.fork(); ${k.ref}.write(m.${js}, w); w.ldelim(a); }`);
        cases.push(`      case ${TAG(f.id, 2)}: m.${js} = readNested(r, ${k.ref}); break;`);
      }
      meta.push(`{ name: ${JSON.stringify(js)}, no: ${f.id}, type: ${JSON.stringify(fullName(f.resolvedType))}, message: () => ${k.ref}${repeated ? ", repeated: true" : ""} }`);
      continue;
    }
    const s = k.s;
    const tsT = k.kind === "enum" ? "number" : s.ts;
    const tsIn = k.kind === "enum" ? "number" : s.tsIn ?? s.ts;
    const packable = s.wt !== 2;
    if (repeated) {
      iface.push(`  ${js}: ${tsT}[];`);
      init.push(`  ${js}?: ${tsIn}[];`);
      defaults.push(`${js}: []`);
      if (packable) {
        writes.push(`  if (m.${js} && m.${js}.length) { w.uint32(${TAG(f.id, 2)}); const a = w.fork(); for (const v of m.${js}) w.${s.wr}(v as never); w.ldelim(a); }`);
        cases.push(`      case ${TAG(f.id, 2)}: { const e = r.delimited(); while (r.pos < e) m.${js}.push(r.${s.rd}()); if (r.pos !== e) throw new ProtoDecodeError("packed field overruns its length"); break; }`);
        cases.push(`      case ${TAG(f.id, s.wt)}: m.${js}.push(r.${s.rd}()); break;`);
      } else {
        writes.push(`  if (m.${js}) for (const v of m.${js}) { w.uint32(${TAG(f.id, s.wt)}); w.${s.wr}(v as never); }`);
        cases.push(`      case ${TAG(f.id, s.wt)}: m.${js}.push(r.${s.rd}()); break;`);
      }
    } else if (hasPresence) {
      iface.push(`  ${js}?: ${tsT};`);
      init.push(`  ${js}?: ${tsIn};`);
      defaults.push(`${js}: undefined`);
      writes.push(`  if (m.${js} !== undefined && m.${js} !== null) { w.uint32(${TAG(f.id, s.wt)}); w.${s.wr}(m.${js} as never); }`);
      cases.push(`      case ${TAG(f.id, s.wt)}: m.${js} = r.${s.rd}(); break;`);
    } else {
      iface.push(`  ${js}: ${tsT};`);
      init.push(`  ${js}?: ${tsIn};`);
      defaults.push(`${js}: ${s.def}`);
      const cond = f.type === "bytes" ? `m.${js} && m.${js}.length` : `m.${js}`;
      writes.push(`  if (${cond}) { w.uint32(${TAG(f.id, s.wt)}); w.${s.wr}(m.${js} as never); }`);
      cases.push(`      case ${TAG(f.id, s.wt)}: m.${js} = r.${s.rd}(); break;`);
    }
    meta.push(`{ name: ${JSON.stringify(js)}, no: ${f.id}, type: ${JSON.stringify(k.kind === "enum" ? "enum" : f.type)}${repeated ? ", repeated: true" : ""}${k.kind === "enum" ? `, enumNames: ${k.ref}_names` : ""} }`);
  }

  const out = [];
  out.push(`/** ${fullName(t)} */`);
  out.push(`export interface ${name} {\n${iface.join("\n")}\n}`);
  out.push(`export interface ${name}Init {\n${init.join("\n")}\n}`);
  out.push(`export const ${name}: MessageCodec<${name}, ${name}Init> = {`);
  out.push(`  typeName: ${JSON.stringify(fullName(t))},`);
  out.push(`  fields: () => [${meta.join(", ")}],`);
  out.push(`  create(init?: ${name}Init): ${name} {`);
  out.push(`    const m: ${name} = { ${defaults.join(", ")} };`);
  out.push(`    return init ? Object.assign(m, init as Partial<${name}>) : m;`);
  out.push(`  },`);
  out.push(`  write(m: ${name}Init, w: Writer): void {`);
  out.push(writes.map((l) => "  " + l).join("\n") || "    void m; void w;");
  out.push(`  },`);
  out.push(`  read(r: Reader, end: number): ${name} {`);
  out.push(`    const m: ${name} = { ${defaults.join(", ")} };`);
  out.push(`    while (r.pos < end) {`);
  out.push(`      const tag = readTag(r);`);
  out.push(`      switch (tag) {`);
  out.push(...cases.map((c) => "  " + c));
  out.push(`        default: r.skip(tag & 7, tag >>> 3);`);
  out.push(`      }`);
  out.push(`    }`);
  out.push(`    if (r.pos !== end) throw new ProtoDecodeError("field overruns message end");`);
  out.push(`    return m;`);
  out.push(`  },`);
  out.push(`  encode(m: ${name}Init): Buffer { const w = new Writer(); this.write(m, w); return w.finish(); },`);
  out.push(`  decode(b: Uint8Array): ${name} { const r = new Reader(b); return this.read(r, r.end); },`);
  out.push(`};`);
  return out.join("\n");
}

function emitService(pkg, s) {
  const name = localName(s);
  const lines = [];
  lines.push(`/** ${fullName(s)} */`);
  lines.push(`export const ${name} = {`);
  lines.push(`  name: ${JSON.stringify(fullName(s))},`);
  lines.push(`  methods: {`);
  for (const m of s.methodsArray) {
    const req = refName(pkg, m.resolvedRequestType);
    const res = refName(pkg, m.resolvedResponseType);
    lines.push(`    ${m.name}: { name: ${JSON.stringify(m.name)}, requestType: ${req}, responseType: ${res} },`);
  }
  lines.push(`  },`);
  lines.push(`} as const;`);
  // A handler interface: what a server implementing this service provides.
  lines.push(`export interface ${name}Handlers {`);
  for (const m of s.methodsArray) {
    const req = refName(pkg, m.resolvedRequestType);
    const res = refName(pkg, m.resolvedResponseType);
    lines.push(`  ${m.name}(req: ${req}, ctx: CallContext): Promise<${res}Init> | ${res}Init;`);
  }
  lines.push(`}`);
  return lines.join("\n");
}

fs.mkdirSync(outDir, { recursive: true });
for (const f of fs.readdirSync(outDir)) if (f.endsWith(".ts")) fs.rmSync(path.join(outDir, f));

const written = [];
for (const [pkg, entry] of [...packages.entries()].sort()) {
  if (!entry.types.length && !entry.enums.length && !entry.services.length) continue;
  const body = [];
  for (const e of entry.enums) body.push(emitEnum(pkg, e));
  for (const t of entry.types) body.push(emitType(pkg, t));
  for (const s of entry.services) body.push(emitService(pkg, s));
  const header = [
    `// Generated by scripts/gen-proto.mjs from proto/; do not edit.`,
    `/* eslint-disable */`,
    `import { Writer, Reader, readTag, ProtoDecodeError } from "../proto/wire";`,
    `import { readNested, EMPTY_BYTES } from "../proto/message";`,
    `import type { MessageCodec } from "../proto/message";`,
  ];
  if (entry.services.length) header.push(`import type { CallContext } from "../proto/message";`);
  for (const dep of [...entry.deps].sort()) header.push(`import * as ${moduleAlias(dep)} from "./${dep}";`);
  header.push(`void ProtoDecodeError; void EMPTY_BYTES; void readNested; void Writer; void Reader; void readTag;`);
  const file = path.join(outDir, `${pkg}.ts`);
  fs.writeFileSync(file, header.join("\n") + "\n\n" + body.join("\n\n") + "\n");
  written.push(path.relative(repo, file));
}
console.log(`gen-proto: ${files.length} .proto files → ${written.length} modules in src/gen`);
