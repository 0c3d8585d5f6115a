// Masks or drops JSON fields by path, for PII: the JavaScript twin of the
// Rust `redact` plugin, held to the same conformance suite.
//
// Config: `mask` (comma-separated field paths, their values replaced by
// `mask_with`, default "***"), `drop` (paths removed), `mask_with`.
// A path is fields separated by dots; `*` is every element of an array or
// every field of an object on the way, a number indexes an array.
// Tombstones pass through; a value that is not JSON is an error, so it is
// dead-lettered rather than leaked unredacted.

let mask = [];
let drop = [];
let maskWith = "***";

function parsePath(text) {
  const segments = text.split(".");
  if (text.trim() === "" || segments.some((s) => s === "")) {
    throw new wasmpipe.ConfigError(
      `invalid field path '${text}': write fields separated by dots, like 'user.email'`,
    );
  }
  return segments;
}

function paths(value) {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "").map(parsePath);
}

function init(config) {
  config.only("mask", "drop", "mask_with");
  mask = paths(config.get("mask"));
  drop = paths(config.get("drop"));
  maskWith = config.get("mask_with", "***");
  if (mask.length === 0 && drop.length === 0) {
    throw new wasmpipe.ConfigError(
      "set 'mask' and/or 'drop' to the field paths to redact, e.g. mask=user.email",
    );
  }
}

// An array index as Rust's usize parse reads it (an optional '+').
function index(text) {
  const digits = text.startsWith("+") ? text.slice(1) : text;
  return /^[0-9]+$/.test(digits) ? Number(digits) : null;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const own = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

// Calls visit(parent, last) wherever `path` ends in `node`.
function parents(node, path, visit) {
  const [head, ...rest] = path;
  if (rest.length === 0) return visit(node, head);
  let children = [];
  if (isObject(node)) {
    children = head === "*" ? Object.values(node) : own(node, head) ? [node[head]] : [];
  } else if (Array.isArray(node)) {
    const i = index(head);
    children = head === "*" ? node : i !== null && i < node.length ? [node[i]] : [];
  }
  for (const child of children) parents(child, rest, visit);
}

function maskField(parent, last) {
  if (isObject(parent)) {
    if (own(parent, last)) parent[last] = maskWith;
  } else if (Array.isArray(parent)) {
    if (last === "*") parent.fill(maskWith);
    else {
      const i = index(last);
      if (i !== null && i < parent.length) parent[i] = maskWith;
    }
  }
}

function dropField(parent, last) {
  if (!isObject(parent)) return;
  if (last === "*") for (const k of Object.keys(parent)) delete parent[k];
  else delete parent[last];
}

function transform(record) {
  if (record.isTombstone()) return record;
  const doc = record.json();
  for (const p of mask) parents(doc, p, maskField);
  for (const p of drop) parents(doc, p, dropField);
  return record.forward({ value: JSON.stringify(doc) });
}
