// In-browser check of an audit inclusion proof (tunegate.audit.inclusion-proof/v1) or of a consistency proof
// between two signed tree heads (tunegate.audit.consistency-proof/v1), so an auditor need not trust the
// server that shows it. The same steps as services/audit/domain/proofs.py:
//   entry hash = SHA-256(canonical JSON of the entry without entry_hash); leaf = SHA-256(0x00 || body)
//   RFC 9162 2.1.3.2: walk the audit path to a root (node = SHA-256(0x01 || left || right))
//   the signed tree head: log_id = SHA-256(raw key); Ed25519 over canonical JSON of
//   {log_id, root_hash, timestamp, tree_size}, and over the C2SP checkpoint text.
//   RFC 9162 2.1.4.2: a consistency path proves the old tree is a prefix of the new one.
// WebCrypto only (SHA-256, Ed25519); no library, no network.
"use strict";

const TunegateVerify = (() => {
  const utf8 = new TextEncoder();

  function hexToBytes(hex) {
    if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-f]/.test(hex)) throw new Error(`not lower-case hex: ${hex}`);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // shared/canonical.py: sorted keys, no whitespace, UTF-8, non-ASCII kept as is. JSON.stringify escapes
  // strings exactly as Python's json does with ensure_ascii=False (short escapes, else \u00XX lower-case).
  function canonicalJson(value) {
    if (value === null || typeof value !== "object") {
      if (typeof value === "number" && !Number.isInteger(value)) throw new Error("only integers are canonical here");
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    // Python sorts keys by code point; JS sort compares UTF-16 units: identical for the ASCII keys used here.
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }

  const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
  const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

  // RFC 9162 2.1.3.2 steps 1-5 (shared/merkle.py root_from_inclusion_proof); null when the path cannot belong
  // to a tree of that size.
  async function rootFromInclusion(leaf, index, size, path) {
    if (!(index >= 0 && index < size) || leaf.length !== 32) return null;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0 || p.length !== 32) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // RFC 9162 2.1.4.2 (shared/merkle.py verify_consistency): true iff `path` proves the tree (oldSize, oldRoot)
  // is a prefix of (newSize, newRoot).
  async function verifyConsistencyPath(oldSize, newSize, oldRoot, newRoot, path) {
    const same = (a, b) => bytesToHex(a) === bytesToHex(b);
    if (!(oldSize >= 0 && oldSize <= newSize) || path.some((p) => p.length !== 32)) return false;
    if (oldSize === 0) return path.length === 0;
    if (oldSize === newSize) return path.length === 0 && same(oldRoot, newRoot);
    if (path.length === 0) return false;
    const nodes = [...path];
    if ((oldSize & (oldSize - 1)) === 0) nodes.unshift(oldRoot); // a power of two: the old root is a node of the new tree
    let fn = oldSize - 1, sn = newSize - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = nodes[0], sr = nodes[0];
    for (const c of nodes.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return same(fr, oldRoot) && same(sr, newRoot) && sn === 0;
  }

  function pemToDer(pem) {
    const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
    const bin = atob(body);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  async function importKey(pem) {
    const der = pemToDer(pem);
    if (der.length !== 44) throw new Error(`not an Ed25519 public key (SPKI of ${der.length} bytes, expected 44)`);
    const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
    return { key, raw: der.slice(12) };
  }

  const ed25519 = (key, signatureHex, message) =>
    crypto.subtle.verify({ name: "Ed25519" }, key, hexToBytes(signatureHex), message);

  // services/audit/domain/tree_heads.py SignedTreeHead.problem_with; null when the head is good.
  async function headProblem(head, pem) {
    const { key, raw } = await importKey(pem);
    const logId = bytesToHex(await sha256(raw));
    if (head.log_id !== logId) return `the tree head names log ${head.log_id}, not this key's log ${logId}`;
    const statement = { tree_size: head.tree_size, root_hash: head.root_hash, timestamp: head.timestamp, log_id: head.log_id };
    if (!(await ed25519(key, head.signature, utf8.encode(canonicalJson(statement))))) {
      return `tree head of size ${head.tree_size}: Ed25519 signature does not verify`;
    }
    const root64 = btoa(String.fromCharCode(...hexToBytes(head.root_hash)));
    const checkpoint = `tunegate.local/audit/${head.log_id.slice(0, 16)}\n${head.tree_size}\n${root64}\n`;
    if (!(await ed25519(key, head.checkpoint_signature, utf8.encode(checkpoint)))) {
      return `tree head of size ${head.tree_size}: the checkpoint's Ed25519 signature does not verify`;
    }
    return null;
  }

  // services/audit/domain/proofs.py verify_proof_document: {ok, detail}.
  async function verifyProof(doc, pem) {
    const fail = (detail) => ({ ok: false, detail });
    const entry = { ...doc.entry };
    const claimed = entry.entry_hash;
    delete entry.entry_hash;
    const body = utf8.encode(canonicalJson(entry));
    if (bytesToHex(await sha256(body)) !== claimed) return fail(`entry ${entry.sequence}: entry_hash does not match the entry's fields`);
    if (doc.leaf_index !== entry.sequence) return fail(`leaf_index ${doc.leaf_index} is not the entry's sequence ${entry.sequence}`);
    if (doc.tree_size !== doc.tree_head.tree_size) return fail(`tree_size ${doc.tree_size} differs from the signed head's ${doc.tree_head.tree_size}`);
    let problem;
    try {
      problem = await headProblem(doc.tree_head, pem);
    } catch (err) {
      return fail(`public key: ${err.message}`);
    }
    if (problem) return fail(problem);
    const path = doc.audit_path.map(hexToBytes);
    const root = await rootFromInclusion(await leafHash(body), doc.leaf_index, doc.tree_size, path);
    if (root === null || bytesToHex(root) !== doc.tree_head.root_hash) {
      return fail(`audit path does not lead from entry ${entry.sequence} to the signed root of size ${doc.tree_size}`);
    }
    return {
      ok: true,
      detail: `event ${entry.event_id} is entry ${entry.sequence} of the signed tree of size ${doc.tree_size} ` +
        `(root ${doc.tree_head.root_hash}, signed ${doc.tree_head.timestamp})`,
    };
  }

  // services/audit/domain/proofs.py verify_consistency_document, stricter: the console compares two *signed*
  // heads, so both must be present and verify under the trusted key. {ok, detail}.
  async function verifyConsistency(doc, pem) {
    const fail = (detail) => ({ ok: false, detail });
    for (const [label, head, size, root] of [
      ["old", doc.old_head, doc.old_size, doc.old_root],
      ["new", doc.new_head, doc.new_size, doc.new_root],
    ]) {
      if (!head) return fail(`no signed ${label} head of size ${size} in the document`);
      if (head.tree_size !== size || head.root_hash !== root) {
        return fail(`${label} signed head (${head.tree_size}, ${head.root_hash}) is not (${size}, ${root})`);
      }
      let problem;
      try {
        problem = await headProblem(head, pem);
      } catch (err) {
        return fail(`public key: ${err.message}`);
      }
      if (problem) return fail(`${label} head: ${problem}`);
    }
    const path = doc.consistency_path.map(hexToBytes);
    if (!(await verifyConsistencyPath(doc.old_size, doc.new_size, hexToBytes(doc.old_root), hexToBytes(doc.new_root), path))) {
      return fail(`tree of size ${doc.old_size} is not proven a prefix of the tree of size ${doc.new_size}`);
    }
    return {
      ok: true,
      detail: `the signed tree of size ${doc.old_size} (signed ${doc.old_head.timestamp}) is a prefix of the signed ` +
        `tree of size ${doc.new_size} (signed ${doc.new_head.timestamp}): nothing logged before was changed or removed`,
    };
  }

  const CHECKS = {
    "tunegate.audit.inclusion-proof/v1": verifyProof,
    "tunegate.audit.consistency-proof/v1": verifyConsistency,
  };

  function wire() {
    const button = document.getElementById("verify");
    if (!button) return;
    const out = document.getElementById("verify-result");
    button.addEventListener("click", async () => {
      out.className = "";
      out.textContent = "Checking…";
      let result;
      try {
        const doc = JSON.parse(document.getElementById("proof").textContent);
        const check = CHECKS[doc.format];
        if (!check) throw new Error(`unknown proof format ${doc.format}`);
        result = await check(doc, document.getElementById("public-key").value);
      } catch (err) {
        result = { ok: false, detail: `could not check: ${err.message}` };
      }
      out.className = result.ok ? "good" : "bad";
      out.textContent = `${result.ok ? "Verified" : "NOT verified"}: ${result.detail}`;
    });
  }

  if (typeof document !== "undefined") document.addEventListener("DOMContentLoaded", wire);
  return {
    canonicalJson, hexToBytes, bytesToHex, leafHash, rootFromInclusion, verifyProof, verifyConsistencyPath,
    verifyConsistency,
  };
})();
