// Microsoft's Adaptive Card Templating (adaptivecards-templating, the Designer's engine) as a
// batch tool for tests/test_templating_conformance.py: reads a JSON array of cases
// {id, template, data} on stdin, writes a JSON array of {id, result} or {id, error} on stdout.
// The engine runs as shipped: no GlobalSettings changed.
"use strict";
const ACData = require("adaptivecards-templating");

function expand(template, data) {
    try {
        const result = new ACData.Template(template).expand({ $root: data });
        // undefined (an object dropped at the root) has no JSON: say so explicitly
        return result === undefined ? { dropped: true } : { result };
    } catch (e) {
        return { error: String(e && e.message ? e.message : e) };
    }
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
    const cases = JSON.parse(input);
    const out = cases.map((c) => ({ id: c.id, ...expand(c.template, c.data) }));
    process.stdout.write(JSON.stringify(out));
});
