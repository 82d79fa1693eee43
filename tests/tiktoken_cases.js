// Builds the tokenizer's reference test set and encodes it with OpenAI's
// tiktoken ("gpt2" encoding, npm package tiktoken = WASM build of the Rust
// crate; its gpt2 ranks are bundled, so this runs offline).
//
//   node tests/tiktoken_cases.js OUT.bin [--no-sweep]
//
// OUT.bin (little-endian), read by tests/tiktoken_check.c:
//   "LMUTIKTOKEN1" u32 count, then per case:
//   u8 mode (0 plain text, 1 "<|endoftext|>" allowed, 2 invalid UTF-8: round
//   trip only, no ids), u32 name length, name, u32 text length, text bytes,
//   u32 id count, ids (u32 each).
// Everything is deterministic (seeded PRNG), so the set is the same on every
// run and machine.
"use strict";
const fs = require("fs");
const path = require("path");

const nodeDir = path.join(__dirname, "..", "build", "node", "node_modules");
const { get_encoding } = require(path.join(nodeDir, "tiktoken"));
const enc = get_encoding("gpt2");

const out = process.argv[2];
const sweep = !process.argv.includes("--no-sweep");
if (!out) { console.error("usage: node tiktoken_cases.js OUT.bin [--no-sweep]"); process.exit(2); }

// mulberry32: small seeded PRNG
let seed = 0x1234567;
function rnd() {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const rint = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

const cases = []; // {name, mode, bytes(Buffer), ids}
function add(name, text, mode = 0) {
    const ids = mode === 1 ? enc.encode(text, "all") : enc.encode_ordinary(text);
    cases.push({ name, mode, bytes: Buffer.from(text, "utf8"), ids });
}
function addRaw(name, buf) { cases.push({ name, mode: 2, bytes: buf, ids: new Uint32Array(0) }); }

// ---- English prose ----
const prose = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness...",
    "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, I thought I would sail about a little.",
    "“Well,” said Alice, “I don’t know what you mean.” She paused; then, quite suddenly: ‘Why not?’",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong's first words were: \"That's one small step for [a] man, one giant leap for mankind.\"",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal, thank you very much.",
    "Hello, world!",
    "Hello world",
    " leading space",
    "trailing space ",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "e.g. i.e. etc. vs. Dr. St. Jr. U.S.A. a.m. p.m.",
    "Semi;colons, commas, and — dashes – of every kind: hyphen-ated, en–dash, em—dash.",
    "(Parentheses) [brackets] {braces} <angles> «guillemets» ‹single›",
    "Email me at john.doe+test@example.com or visit https://www.example.org/path?q=1&r=two#frag.",
    "The price is $19.99 (or €17,50 / £15.00 / ¥2000); tax is 8.25%.",
    "#hashtag @mention ~tilde ^caret *asterisk* _underscore_ `backtick`",
    "She said, \"I'll be there at 5 o'clock,\" but she wasn't.",
    "Wait... what?! Really?!?! No way‽",
    "This is a sentence.\nThis is another one.\n\nA new paragraph starts here.",
    "Line one\r\nLine two\r\nLine three\r\n",
    "    Indented with four spaces.\n\tIndented with a tab.",
];
prose.forEach((t, i) => add("prose/" + i, t));

// ---- code ----
const code = [
    "#include <stdio.h>\n\nint main(void)\n{\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])\n",
    "for (let i = 0; i < arr.length; i++) {\n\tif (arr[i] !== undefined && arr[i] >= 0x1F) {\n\t\tsum += arr[i] ** 2;\n\t}\n}\n",
    "<!DOCTYPE html>\n<html lang=\"en\">\n  <head><title>Test &amp; more</title></head>\n  <body class='main'></body>\n</html>\n",
    "{\"name\": \"lmu\", \"version\": \"0.1.0\", \"tags\": [\"c99\", \"lmu\"], \"nested\": {\"a\": null, \"b\": true, \"c\": -1.5e+3}}",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; wc -l \"$f\" | awk '{print $1}'; done\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b<<=6;c>>=7;d&=8;e|=9;f^=10;g&&h||!i;j?k:l;",
    "    \n\n    return;\n        }\n    }\n\n\n",
    "a_b_c = snake_case_name; camelCaseName; PascalCaseName; SCREAMING_CASE; kebab-case-name",
    "// comment\n/* block\n * comment */\n# python comment\n-- sql comment\n<!-- html comment -->",
    "0x7FFFFFFF 0b1010 0o777 1e10 1.5f 2.0L 100_000 3'000'000",
    "if(a){b();}else if(c){d();}else{e();}",
    "$ ls -la | grep '^d' > out.txt 2>&1 && echo ok || echo fail",
];
code.forEach((t, i) => add("code/" + i, t));

// ---- numbers ----
const numbers = [
    "0", "1", "12", "123", "1234", "12345", "123456789012345678901234567890",
    "3.14159265358979323846", "-42", "+7", "1,234,567.89", "1.234.567,89", "6.022e23", "1e-9",
    "2024-01-15T13:45:30Z", "(555) 123-4567", "+1-800-555-0199", "192.168.0.1", "v1.2.3-rc.4",
    "The year 2000 had 366 days; 1900 had 365.", "50% of 200 is 100.", "10x faster, 3D, 4K, 1080p, 5G",
    "٠١٢٣٤٥٦٧٨٩ Arabic-Indic", "०१२३४५६७८९ Devanagari", "１２３ fullwidth", "x² + y³ = z¹⁰", "½ ¼ ¾ ⅓ ⅞",
    "Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅿ roman", "①②③ circled", "𝟎𝟏𝟐 math digits", "〇一二三 hanzi", "໑໒໓ Lao", "௧௨௩ Tamil",
    "123abc456", "abc123def", "1 2 3 4 5", "1  2   3", "9".repeat(200), "0.1+0.2=0.30000000000000004",
];
numbers.forEach((t, i) => add("numbers/" + i, t));

// ---- contractions ----
const contr = [
    "don't won't can't shouldn't I'm you're we've they'll she'd it's",
    "DON'T WON'T CAN'T I'M YOU'RE WE'VE THEY'LL SHE'D IT'S",
    "Don'T It'S He'Ll We'Ve They'Re I'M She'D",
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "'re", "'ll", "'d", "'", "''", "'''s",
    "rock'n'roll y'all'd've o'clock ma'am", "the '90s and '80s", "'tis 'twas", "James's Charles'",
    "it’s don’t (curly apostrophes)", "a's b't c're d've e'm f'll g'd", "x''s", " 's", "  's",
    "'sup 'til 'em", "He said 'hello' and 'goodbye'.", "'s's's's", "''''''", "1's 2'd 3'll",
    "I'M GOING TO THE STORE'S BACK", "Mc'Donald's", "l'homme d'état aujourd'hui",
];
contr.forEach((t, i) => add("contractions/" + i, t));

// ---- white space ----
const wsChars = [" ", "\t", "\n", "\r\n", "\r", "\u000b", "\u000c", "\u00a0", "\u3000", "\u2028", "\u2029",
    "\u0085", "\u1680", "\u2000", "\u2009", "\u200a", "\u202f", "\u205f"];
const notWs = ["\u200b", "\u180e", "\u001c", "\u001f", "\ufeff", "\u2060"]; // not White_Space
let wi = 0;
for (const c of wsChars) {
    for (let n = 1; n <= 4; n++) {
        const run = c.repeat(n);
        add("ws/" + wi++, "word" + run + "word");
        add("ws/" + wi++, run + "word");
        add("ws/" + wi++, "word" + run);
    }
    add("ws/" + wi++, c);
    add("ws/" + wi++, "a" + c + " b" + c + c + " c " + c);
}
for (const c of notWs) add("ws/" + wi++, "a" + c + "b " + c + " c" + c + c);
const wsMix = ["  \t\n", " \n ", "\n\n\n", "\t\t", " \t ", "\r\n\r\n", " \r\n", "\n \n", "\u3000 ", " \u00a0"];
for (const a of wsMix) {
    add("ws/" + wi++, "x" + a + "y");
    add("ws/" + wi++, a + "x" + a);
    add("ws/" + wi++, a);
    add("ws/" + wi++, "x" + a + "1" + a + "!" + a + "'s" + a);
}
add("ws/" + wi++, " ".repeat(100));
add("ws/" + wi++, "a" + " ".repeat(37) + "b" + "\t".repeat(9) + "c" + "\n".repeat(20) + "d");
add("ws/" + wi++, "");

// ---- scripts, letters and marks ----
const scripts = [
    "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "العربية: نصٌّ حكيمٌ لهُ سِرٌّ قاطِعٌ وَذُو شَأنٍ عَظيمٍ مكتوبٌ على ثوبٍ أخضرَ",
    "עברית: דג סקרן שט בים מאוכזב ולפתע מצא חברה. בְּרֵאשִׁית בָּרָא",
    "हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
    "বাংলা: আমি বাংলায় গান গাই। ক্ষুদ্র",
    "தமிழ்: யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது",
    "ไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า",
    "ລາວ: ພາສາລາວ", "བོད་ཡིག: བཀྲ་ཤིས་བདེ་ལེགས།", "ქართული: სწრაფი ყავისფერი მელა",
    "Հայերեն: Բարեւ աշխարհ", "አማርኛ: ሰላም ልዑል", "中文：我能吞下玻璃而不伤身体。",
    "日本語：いろはにほへと ちりぬるを カタカナ ｶﾀｶﾅ 漢字かな交じり文",
    "한국어: 다람쥐 헌 쳇바퀴에 타고파 ᄀᄁᄂ ㄱㄴㄷ", "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì.",
    "Tiếng Việt (NFD): Tiếng Việt", "ᠮᠣᠩᠭᠣᠯ Mongolian", "ᏣᎳᎩ Cherokee", "ᚠᚢᚦᚨᚱᚲ runes",
    "𝐀𝐁𝐂 𝑎𝑏𝑐 𝔸𝔹ℂ math letters", "𒀀𒀁𒀂 cuneiform", "𓀀𓀁 hieroglyphs", "ꓐꓑꓒ Lisu",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ zalgo", "e\u0301 a\u0300 o\u0308 n\u0303 combining", "é à ö ñ precomposed",
    "café naïve résumé coöperate Ångström façade", "ß ẞ ǅ ǈ ǋ ᾈ ﬁ ﬂ ligatures", "ʰʲʷ ˈˌ modifier letters ᵃᵇ",
    "Ⓐⓑ circled letters", "ＡＢＣ ａｂｃ fullwidth", "ﻻ ﷺ ﷽ presentation forms", "ｱｲｳ halfwidth katakana",
    "\u00ad soft\u00adhyphen", "a\u200db\u200cc ZWJ ZWNJ", "\u0640ـــ tatweel", "ߊߋ NKo", "ꦄꦱ Javanese",
    "𐌰𐌱 Gothic", "𐐀𐐁 Deseret 𐐨𐐩", "ᄀ\u1161\u11a8 jamo", "\u0e01\u0e34\u0e4d Thai marks", "ǀǁǂǃ clicks",
    "\u0903\u093e Devanagari Mc", "\u05d0\u05b7\u05d1 Hebrew points", "\u0627\u064b\u0644 Arabic tanwin",
    "Ｉ\u0307 İ ı dotted", "ªº ordinal", "µ micro", "ŉ ĸ ſ old letters", "Ǆ ǅ ǆ digraphs",
    "\u2160\u2161 letter-like numbers \u3007", "\u16ee\u16ef\u16f0 runic numbers", "\u{1d7ce}\u{1d7cf} math bold digits",
];
scripts.forEach((t, i) => add("scripts/" + i, t));

// ---- emoji ----
const emoji = [
    "😀😃😄😁", "I ❤️ NY", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦 family", "👩‍💻 coder", "🏳️‍🌈 flag",
    "🇺🇸🇬🇧🇯🇵🇩🇪 flags", "1️⃣ 2️⃣ #️⃣ *️⃣ keycaps", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland", "☺︎ ☺️ text vs emoji",
    "🤷‍♀️🤷‍♂️", "🧑🏽‍🚀", "ok👌ok", "a😀b", "😀 😀  😀", "🦀🐍🐪 languages", "⌚⌛⏰", "©®™",
    "🫠🫶🪿 newer emoji", "🀄🃏 game", "👁️‍🗨️", "🙂\n🙃\t🙂", "emoji at end 🎉", "🎉 emoji at start",
];
emoji.forEach((t, i) => add("emoji/" + i, t));

// ---- special token ----
const specials = [
    "<|endoftext|>", "Hello<|endoftext|>World", "a <|endoftext|> b", "<|endoftext|><|endoftext|>",
    "<|endoftext", "endoftext|>", "<|endoftext|", "<<|endoftext|>>", "x<|endoftext|>  \n",
    "<|startoftext|>", "\n\n<|endoftext|>\n\n", "<|ENDOFTEXT|>", "<| endoftext |>",
    "text  <|endoftext|>  more text's 123",
];
specials.forEach((t, i) => { add("special/allowed/" + i, t, 1); add("special/plain/" + i, t, 0); });

// ---- long and pathological words (tiktoken is quadratic on these; keep them mid-size) ----
const letters = "abcdefghijklmnopqrstuvwxyz";
let lw = "";
for (let i = 0; i < 3000; i++) lw += pick(letters);
add("long/random-letters", lw);
add("long/aaaa", "a".repeat(2000));
add("long/abab", "ab".repeat(1500));
add("long/digits", "1234567890".repeat(200));
add("long/punct", "!?.,;:-".repeat(300));
add("long/spaces", " ".repeat(1500) + "x");
add("long/mixed-case", "aBcD".repeat(700));
add("long/cjk", "的一是不了人我在有他".repeat(150));
add("long/accents", "éèêëàâäôöûüç".repeat(150));
add("long/emoji", "😀🎉".repeat(300));

// ---- random mixtures of everything above ----
const pools = [prose, code, numbers, contr, scripts, emoji, wsChars, wsMix, notWs,
    ["'s", "'S", "'ll", " ", "  ", "\n", "\t", "1", "a", "A", "é", "!", "?", "😀", "\u0301", "中"]];
for (let i = 0; i < 300; i++) {
    let t = "";
    const k = rint(1, 12);
    for (let j = 0; j < k; j++) {
        let frag = pick(pick(pools));
        if (rnd() < 0.3) { const a = rint(0, frag.length), b = rint(a, frag.length); frag = frag.slice(a, b); }
        t += frag;
    }
    // slicing may cut a surrogate pair: tiktoken would see U+FFFD; keep texts valid
    t = Buffer.from(t, "utf8").toString("utf8").replace(/\ufffd/g, "?");
    add("mix/" + i, t, rnd() < 0.2 ? 1 : 0);
}

// ---- invalid UTF-8 (round trip only: a JS string cannot hold these) ----
const inv = [
    [0x80], [0xff], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
    [0xf8, 0x88, 0x80, 0x80, 0x80], [0x00], [0x00, 0x00, 0x20, 0x00], [0x61, 0xff, 0x62, 0x20, 0x27, 0x73],
    [0x20, 0xc3, 0x20, 0xa9, 0x20], [0xe0, 0x80, 0xaf], [0xef, 0xbf, 0xbe], [0x27, 0xff, 0x73],
];
inv.forEach((b, i) => addRaw("invalid/" + i, Buffer.from(b)));
for (let i = 0; i < 40; i++) {
    const n = rint(1, 200), b = Buffer.alloc(n);
    for (let j = 0; j < n; j++) b[j] = rnd() < 0.5 ? rint(0, 255) : pick([0x20, 0x61, 0x0a, 0x27, 0x73, 0x80, 0xc3, 0xe2, 0xf0]);
    addRaw("invalid/random" + i, b);
}

// ---- Character classes as tiktoken's regex engine sees them, for every
// code point: ids cannot show them reliably (a piece boundary next to a rare
// character rarely changes a merge), so ask the engine directly. A Tiktoken
// with GPT-2's ranks and the pattern "ab(?=X)|\n|[^\n]" encodes "ab" + c as
// the single token "ab" exactly when c matches X. ----
function classTable() {
    const { Tiktoken } = require(path.join(nodeDir, "tiktoken"));
    const g = JSON.parse(fs.readFileSync(path.join(nodeDir, "tiktoken", "encoders", "gpt2.json"), "utf8"));
    const AB = enc.encode_ordinary("ab");
    if (AB.length !== 1) throw new Error("'ab' is not one token");
    const cls = Buffer.alloc(0x110000, 0);
    const probes = [[1, "\\p{L}"], [2, "\\p{N}"], [4, "\\s"]];
    for (const [bit, X] of probes) {
        const t = new Tiktoken(g.bpe_ranks, {}, "ab(?=" + X + ")|\\n|[^\\n]");
        const NL = t.encode_ordinary("\n")[0];
        for (let base = 0; base < 0x110000; base += 0x10000) {
            const cps = [];
            let s = "";
            for (let cp = base; cp < base + 0x10000; cp++) {
                if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 10) continue;
                cps.push(cp);
                s += "ab" + String.fromCodePoint(cp) + "\n";
            }
            const ids = t.encode_ordinary(s);
            let k = 0;
            for (const cp of cps) {
                if (ids[k] === AB[0]) cls[cp] |= bit;
                while (ids[k] !== NL) k++;
                k++;
            }
            if (k !== ids.length) throw new Error("class probe out of step");
        }
        t.free();
    }
    cls[10] = 4; // "\n" is the probe's separator; it is White_Space
    for (let cp = 0xd800; cp <= 0xdfff; cp++) cls[cp] = 0xff; // not characters
    return cls;
}

// ---- Unicode sweep: BPE and round trip of every code point of planes 0-2
// and 14, in letter, number, space and punctuation contexts ----
// Code points that tiktoken's newer Unicode knows as letters or numbers but
// that are unassigned in the version of our tables are left out here (the
// class check reports them).
function unassignedInTables() {
    const u = new Uint8Array(0x110000);
    for (const line of fs.readFileSync(path.join(__dirname, "tiktoken_unassigned.txt"), "utf8").split("\n")) {
        const m = /^([0-9A-F]+)\.\.([0-9A-F]+)/.exec(line);
        if (m) for (let x = parseInt(m[1], 16); x <= parseInt(m[2], 16); x++) u[x] = 1;
    }
    return u;
}
if (sweep) {
    var classes = classTable();
    const newer = unassignedInTables();
    for (let base = 0; base < 0x110000; base += 512) {
        if (base >= 0x30000 && base < 0xe0000) continue;
        let t = "";
        for (let cp = base; cp < base + 512; cp++) {
            if ((cp >= 0xd800 && cp <= 0xdfff) || (newer[cp] && classes[cp])) continue;
            const c = String.fromCodePoint(cp);
            t += "a" + c + "1" + c + " " + c + "." + c + "'s\n";
        }
        if (t) add("sweep/U+" + base.toString(16).toUpperCase(), t);
    }
}

// ---- write ----
let size = 16;
for (const c of cases) size += 1 + 4 + Buffer.byteLength(c.name) + 4 + c.bytes.length + 4 + 4 * c.ids.length;
const buf = Buffer.alloc(size);
let o = 0;
buf.write("LMUTIKTOKEN1", o); o += 12;
buf.writeUInt32LE(cases.length, o); o += 4;
for (const c of cases) {
    buf.writeUInt8(c.mode, o); o += 1;
    const nb = Buffer.from(c.name, "utf8");
    buf.writeUInt32LE(nb.length, o); o += 4; nb.copy(buf, o); o += nb.length;
    buf.writeUInt32LE(c.bytes.length, o); o += 4; c.bytes.copy(buf, o); o += c.bytes.length;
    buf.writeUInt32LE(c.ids.length, o); o += 4;
    for (const id of c.ids) { buf.writeUInt32LE(id, o); o += 4; }
}
fs.writeFileSync(out, buf);
if (sweep) fs.writeFileSync(out.replace(/\.bin$/, "") + ".classes", classes);
const nonSweep = cases.filter((c) => !c.name.startsWith("sweep/")).length;
console.log(`tiktoken_cases: ${cases.length} texts (${nonSweep} hand-built/generated, ${cases.length - nonSweep} Unicode sweep) -> ${out}`);
enc.free();
