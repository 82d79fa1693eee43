// tiktoken's side of tools/bench_tokenizer.c: encodes the same file with the
// npm package tiktoken ("gpt2", WASM build of OpenAI's Rust crate), one
// thread, best of RUNS, and checks its ids against ours.
//
//   node tools/bench_tokenizer.js TEXT [OUR_IDS.bin] [RUNS]
//
// Prints "tiktoken: X.XX MB/s ..." and, given our ids (u32 little-endian),
// whether every id matches.
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require(path.join(__dirname, "..", "build", "node", "node_modules", "tiktoken"));

const file = process.argv[2];
const ours = process.argv[3];
const runs = parseInt(process.argv[4] || "3", 10);
const enc = get_encoding("gpt2");
const buf = fs.readFileSync(file);
const text = buf.toString("utf8"); // the corpus is valid UTF-8
let best = Infinity, ids = null;
for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    ids = enc.encode_ordinary(text);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (dt < best) best = dt;
}
console.log(`tiktoken ${require(path.join(__dirname, "..", "build", "node", "node_modules", "tiktoken", "package.json")).version} (node ${process.version}, WASM, 1 thread): ` +
    `${(buf.length / 1e6 / best).toFixed(2)} MB/s  (${buf.length} bytes, ${ids.length} ids, best of ${runs}: ${(best * 1e3).toFixed(1)} ms)`);
if (ours) {
    const b = fs.readFileSync(ours);
    const n = b.length / 4;
    let same = n === ids.length, first = -1;
    for (let i = 0; i < Math.min(n, ids.length); i++) {
        if (b.readUInt32LE(4 * i) !== ids[i]) { same = false; first = i; break; }
    }
    console.log(same ? `tiktoken: all ${n} ids equal lmu's` : `tiktoken: ids DIFFER (lmu ${n}, tiktoken ${ids.length}, first at ${first})`);
    if (!same) process.exitCode = 1;
}
// The pathological case: one 100 KB word (tiktoken's merge is quadratic).
const word = "a".repeat(100000);
const t0 = process.hrtime.bigint();
enc.encode_ordinary(word);
console.log(`tiktoken: one 100 KB word ("a" * 100000): ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);
enc.free();
