// Extracts, for the operations the fake GitHub implements, a "required skeleton" of each
// response schema from @octokit/openapi's api.github.com.deref.json: for objects, the required
// properties (recursively) and their types; enough to check a response has every field a typed
// client may rely on. Usage: node extract.js path/to/api.github.com.deref.json > schemas.json
const spec = require(require("path").resolve(process.argv[2]));
const ops = [
  ["get", "/app", "200"],
  ["get", "/app/installations", "200"],
  ["get", "/repos/{owner}/{repo}/installation", "200"],
  ["post", "/app/installations/{installation_id}/access_tokens", "201"],
  ["get", "/repos/{owner}/{repo}", "200"],
  ["get", "/repos/{owner}/{repo}/branches/{branch}", "200"],
  ["get", "/repos/{owner}/{repo}/git/ref/{ref}", "200"],
  ["get", "/repos/{owner}/{repo}/contents/{path}", "200"],
  ["get", "/repos/{owner}/{repo}/git/trees/{tree_sha}", "200"],
  ["get", "/repos/{owner}/{repo}/git/blobs/{file_sha}", "200"],
  ["post", "/repos/{owner}/{repo}/pulls", "201"],
  ["get", "/repos/{owner}/{repo}/pulls", "200"],
  ["get", "/repos/{owner}/{repo}/pulls/{pull_number}", "200"],
  ["patch", "/repos/{owner}/{repo}/pulls/{pull_number}", "200"],
  ["put", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", "200"],
  ["get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "200"],
  ["get", "/repos/{owner}/{repo}/pulls/{pull_number}/commits", "200"],
  ["post", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers", "201"],
  ["post", "/repos/{owner}/{repo}/issues/{issue_number}/labels", "200"],
  ["post", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201"],
  ["get", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "200"],
  ["post", "/repos/{owner}/{repo}/statuses/{sha}", "201"],
  ["get", "/repos/{owner}/{repo}/commits/{ref}/statuses", "200"],
  ["get", "/repos/{owner}/{repo}/commits/{ref}/status", "200"],
  ["get", "/orgs/{org}/teams/{team_slug}/memberships/{username}", "200"],
  ["get", "/orgs/{org}/teams/{team_slug}/members", "200"],
  ["get", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs", "200"],
  ["get", "/repos/{owner}/{repo}/actions/runs/{run_id}", "200"],
];
function skel(s, depth) {
  if (!s || depth > 7) return {};
  // GitHub's description writes an installation's `account` as `allOf: [Simple User,
  // Enterprise]` where it means one or the other: several titled schemas are alternatives.
  if (s.allOf && s.allOf.length > 1 && s.allOf.every((x) => x.title)) {
    return { anyOf: s.allOf.map((x) => skel(x, depth)), nullable: !!s.nullable };
  }
  if (s.allOf) {
    const out = { type: "object", required: {} };
    for (const p of s.allOf) Object.assign(out.required, skel(p, depth).required || {});
    return out;
  }
  if (s.anyOf || s.oneOf) {
    const alts = (s.anyOf || s.oneOf).map((x) => skel(x, depth));
    return { anyOf: alts, nullable: !!s.nullable };
  }
  const out = {};
  if (s.type) out.type = s.type;
  if (s.nullable) out.nullable = true;
  if (s.type === "object" || s.properties) {
    out.type = "object";
    out.required = {};
    for (const k of s.required || []) {
      const p = (s.properties || {})[k];
      out.required[k] = p ? skel(p, depth + 1) : {};
    }
  } else if (s.type === "array" && s.items) {
    out.items = skel(s.items, depth + 1);
  }
  return out;
}
const out = {};
for (const [m, p, st] of ops) {
  const op = spec.paths[p][m];
  const c = op.responses[st].content;
  out[`${m.toUpperCase()} ${p} ${st}`] = skel(c["application/json"].schema, 0);
}
console.log(JSON.stringify(out));
