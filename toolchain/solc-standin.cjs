#!/usr/bin/env node
// Offline stand-in for a native `solc` binary, over the npm `solc` package (WebAssembly).
// py-solc-x / ape-solidity only call `--version` and `--standard-json [--base-path P]
// [--include-path P]... [--allow-paths A,B]` with the JSON input on stdin; crytic-compile
// (slither) does the same. Those are the only modes supported.
'use strict';
const fs = require('fs');
const path = require('path');

function fail(message, code = 2) {
  process.stderr.write(`perpsim solc stand-in: ${message}\n`);
  process.exitCode = code;
}

let solc;
try {
  solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));
} catch (err) {
  fail(`cannot load the npm 'solc' package (${err.code || err.message}); run 'make setup' in the project folder`);
  return;
}

const args = process.argv.slice(2);
const version = solc.version().replace('.Emscripten.clang', '.Linux.g++');

if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${version}\n`);
  return;
}
if (!args.includes('--standard-json')) {
  fail(`only --version and --standard-json are supported, got: ${args.join(' ') || '(no arguments)'}`);
  return;
}

// Collect the folders imports may be read from.
const roots = [];
const allowed = [];
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = args[i + 1];
  if (flag === '--base-path' || flag === '--include-path') { roots.push(path.resolve(value)); i++; }
  else if (flag === '--allow-paths') { value.split(',').filter(Boolean).forEach(p => allowed.push(path.resolve(p))); i++; }
  else if (flag.startsWith('--') && flag !== '--standard-json') {
    // Flags with a value we do not need (e.g. --output-dir) are skipped with their value.
    if (value !== undefined && !value.startsWith('--')) i++;
  }
}
if (roots.length === 0) roots.push(process.cwd());
const readable = [...roots, ...allowed];

function isInside(file, folder) {
  const rel = path.relative(folder, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function findImport(importPath) {
  const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map(r => path.join(r, importPath));
  for (const candidate of candidates) {
    const file = path.resolve(candidate);
    if (!readable.some(folder => isInside(file, folder))) continue;
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
  }
  return { error: `File not found inside the allowed paths: ${importPath}` };
}

const input = fs.readFileSync(0, 'utf8');
const output = solc.compile(input, { import: findImport });
// Let node flush stdout on its own: process.exit() here would cut a piped write at 64 KiB.
process.stdout.write(output);
