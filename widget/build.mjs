// Builds dist/avrr-widget.js, the one file a partner page loads: the socket.io client, the
// CSS and src/widget.js, concatenated. No bundler: `node widget/build.mjs`, after `npm ci`.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

// src/widget.js + src/widget.css, unminified: 15 KiB until the "end and forget" control
// and its question in twelve languages (about 3 KiB of UTF-8) were added, then the
// resending of messages and sessions the server refused for a while.
const BUDGET_BYTES = 20 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const read = (path) => readFileSync(join(here, path), "utf8");

const client = read("node_modules/socket.io-client/dist/socket.io.min.js")
  .replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n"); // the map is not served
const clientVersion = JSON.parse(read("node_modules/socket.io-client/package.json")).version;
const css = read("src/widget.css");
const widget = read("src/widget.js");

const own = Buffer.byteLength(css) + Buffer.byteLength(widget);
if (own > BUDGET_BYTES) {
  console.error(`src/widget.js + src/widget.css are ${own} bytes, over the ${BUDGET_BYTES} budget`);
  process.exit(1);
}
new Function("io", "css", "script", widget); // a syntax error fails the build, not the page

const minCss = css.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\s+/g, " ").trim();
const out = `/*! AVRR web chat widget, built by widget/build.mjs. Contains the Socket.IO client ${clientVersion} (MIT License). */
(function () {
// The client's UMD wrapper is handed a private global, so that the page's own "io",
// "define" or "module" are left alone.
var scope = {};
(function (define, exports, module, globalThis) {
${client}
}).call(scope, undefined, undefined, undefined, scope);
(function (io, css, script) {
${widget}
})(scope.io, ${JSON.stringify(minCss)}, document.currentScript);
})();
`;

mkdirSync(join(here, "dist"), { recursive: true });
writeFileSync(join(here, "dist", "avrr-widget.js"), out);
const size = Buffer.byteLength(out);
console.log(
  `widget/dist/avrr-widget.js: ${size} bytes, ${gzipSync(out).length} gzipped ` +
  `(widget.js + widget.css: ${own} bytes; socket.io-client ${clientVersion})`
);
