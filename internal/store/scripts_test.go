package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestScriptsMakeNoKeyNames walks the embedded scripts, each as the store
// runs it (a job transition after job_lib.lua), and fails on a key made
// inside one: every key a redis.call names must be KEYS[...] or a name only
// ever bound to one (a local, or a parameter every caller passes one to).
// No Go file of the store may hold a script of its own either: they are all
// in lua/, where this test sees them.
func TestScriptsMakeNoKeyNames(t *testing.T) {
	files, err := fs.Glob(scriptFS, "lua/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no embedded scripts: %v", err)
	}
	for _, f := range files {
		b, err := scriptFS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src, name := string(b), filepath.Base(f)
		if strings.HasPrefix(name, "job_") && name != "job_lib.lua" {
			src = jobLib + src
		}
		for _, p := range keyProblems(src) {
			t.Errorf("%s: %s", f, p)
		}
		if !strings.HasPrefix(strings.TrimSpace(string(b)), "--") || (strings.Contains(string(b), "KEYS[") && !strings.Contains(string(b), "-- KEYS[1")) {
			t.Errorf("%s: no header saying what its KEYS and ARGV are", f)
		}
	}
	// Scripts written into Go source, which the walk above would miss.
	gofiles, _ := filepath.Glob("*.go")
	inline := regexp.MustCompile("(?s)`[^`]*redis\\.p?call\\([^`]*`")
	for _, f := range gofiles {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inline.FindAllString(string(b), -1) {
			t.Errorf("%s: a script in Go source (scripts belong in lua/): %.60q", f, m)
			for _, p := range keyProblems(strings.Trim(m, "`")) {
				t.Errorf("%s: %s", f, p)
			}
		}
	}
}

// TestKeyProblems: what keyProblems catches and what it lets pass.
func TestKeyProblems(t *testing.T) {
	tests := []struct {
		name, src string
		bad       bool
	}{
		{name: "a key in KEYS", src: `redis.call('HGET', KEYS[1], 'status')`},
		{name: "a local bound to KEYS", src: "local from = KEYS[7]\nif st == 'queued' then from = KEYS[6] end\nredis.call('ZREM', from, id)"},
		{name: "a parameter every caller gives a key",
			src: "local function f(job, running) redis.call('SREM', running, job) end\nf(KEYS[1], KEYS[2])\nf(KEYS[1], KEYS[3])"},
		{name: "text built with .. that is no key", src: `redis.call('XADD', KEYS[1], '*', 'line', step .. ' ' .. member)`},
		{name: "a channel in ARGV", src: `redis.call('PUBLISH', ARGV[1], '')`},
		{name: "a key built with ..", bad: true,
			src: `redis.call('SREM', 'jobgate:ws:' .. ws .. ':running', id)`},
		{name: "a key built from ARGV", bad: true,
			src: `if w then redis.call('SREM', ARGV[7] .. w .. ':jobs', id) end`},
		{name: "a local built with ..", bad: true,
			src: "local key = ARGV[1] .. name\nredis.call('ZADD', key, step, member)"},
		{name: "a local bound to a key and to something else", bad: true,
			src: "local k = KEYS[1]\nif x then k = ARGV[2] end\nredis.call('DEL', k)"},
		{name: "a parameter one caller builds", bad: true,
			src: "local function setstatus(job, id, idx, old, new)\n  redis.call('ZREM', idx .. old, id)\nend\nsetstatus(KEYS[1], id, ARGV[4], st, 'running')"},
		{name: "a parameter given a made key", bad: true,
			src: "local function f(k) redis.call('DEL', k) end\nf(ARGV[1] .. ':x')"},
		{name: "a literal key name", bad: true, src: `redis.call('GET', 'jobgate:cluster_id')`},
		{name: "a key of DEL past the first", bad: true, src: `redis.call('DEL', KEYS[1], ARGV[2])`},
		{name: "a loop variable as a key", bad: true, src: "for k in pairs(t) do redis.call('DEL', k) end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keyProblems(tt.src)
			if (len(got) > 0) != tt.bad {
				t.Fatalf("keyProblems(%q) = %q, want problems: %v", tt.src, got, tt.bad)
			}
		})
	}
}

// keyProblems lists the keys src, a Lua script, names that are not passed in
// KEYS. It knows the subset of Lua the store's scripts are written in.
func keyProblems(src string) []string {
	src = stripLuaComments(src)
	var out []string
	for _, s := range luaStrings(src) {
		if strings.Contains(s, "jobgate:") {
			out = append(out, "a key name in the script: "+strconv.Quote(s))
		}
	}
	defs := luaDefinitions(src)
	for _, call := range findCalls(src, `redis\.p?call\(`) {
		if len(call) == 0 {
			continue
		}
		cmd := strings.ToUpper(strings.Trim(call[0], `'"`))
		var keys []string
		switch cmd {
		case "TIME", "PUBLISH":
		case "DEL", "EXISTS", "UNLINK", "TOUCH":
			keys = call[1:]
		default:
			if len(call) > 1 {
				keys = call[1:2]
			}
		}
		for _, k := range keys {
			if !keyBound(k, defs, map[string]bool{}) {
				out = append(out, cmd+" of "+strconv.Quote(k)+", a key not passed in KEYS")
			}
		}
	}
	return out
}

var (
	keysRef   = regexp.MustCompile(`^KEYS\[[^\]]+\]$`)
	luaIdent  = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	localDef  = regexp.MustCompile(`\blocal\s+([A-Za-z_][\w\s,]*?)\s*=([^=].*)`)
	plainDef  = regexp.MustCompile(`(?:^|[\s;]|\bthen|\bdo|\belse)\s*([A-Za-z_]\w*)\s*=([^=].*)`)
	funcDef   = regexp.MustCompile(`\bfunction\s+([A-Za-z_]\w*)\s*\(([^)]*)\)`)
	forDef    = regexp.MustCompile(`\bfor\s+([A-Za-z_][\w\s,]*?)\s+(?:in|=)`)
	exprBreak = regexp.MustCompile(`\s(?:end|else|elseif|then|do|local|return|if|for)\b|;`)
)

// luaDefinitions maps each name to what it is bound to anywhere in src: an
// expression, "param:F:i" (parameter i of function F), or "loop".
func luaDefinitions(src string) map[string][]string {
	defs := map[string][]string{}
	for _, line := range strings.Split(src, "\n") {
		if m := funcDef.FindStringSubmatch(line); m != nil {
			for i, p := range strings.Split(m[2], ",") {
				if p = strings.TrimSpace(p); p != "" {
					defs[p] = append(defs[p], "param:"+m[1]+":"+strconv.Itoa(i))
				}
			}
		}
		if m := forDef.FindStringSubmatch(line); m != nil {
			for _, n := range strings.Split(m[1], ",") {
				defs[strings.TrimSpace(n)] = append(defs[strings.TrimSpace(n)], "loop")
			}
		}
		if m := localDef.FindStringSubmatch(line); m != nil {
			names, rhs := strings.Split(m[1], ","), splitArgs(cutExpr(m[2]))
			for i, n := range names {
				e := "nil"
				if i < len(rhs) {
					e = rhs[i]
				}
				defs[strings.TrimSpace(n)] = append(defs[strings.TrimSpace(n)], e)
			}
			continue
		}
		for _, m := range plainDef.FindAllStringSubmatch(line, -1) {
			if m[1] != "local" {
				defs[m[1]] = append(defs[m[1]], strings.TrimSpace(cutExpr(m[2])))
			}
		}
	}
	defs["\x00src"] = []string{src}
	return defs
}

// cutExpr is the expression at the start of s, up to the keyword that ends it.
func cutExpr(s string) string {
	if loc := exprBreak.FindStringIndex(s); loc != nil {
		s = s[:loc[0]]
	}
	return strings.TrimSpace(s)
}

// keyBound reports whether expression e is a key passed in KEYS.
func keyBound(e string, defs map[string][]string, seen map[string]bool) bool {
	e = strings.TrimSpace(e)
	switch {
	case keysRef.MatchString(e):
		return true
	case strings.HasPrefix(e, "param:"):
		f := strings.Split(e, ":")
		i, _ := strconv.Atoi(f[2])
		for _, args := range findCalls(defs["\x00src"][0], `(?:^|[^\w.:])`+regexp.QuoteMeta(f[1])+`\(`) {
			if i >= len(args) || !keyBound(args[i], defs, seen) {
				return false
			}
		}
		return true // a function nobody calls passes no key
	case !luaIdent.MatchString(e) || len(defs[e]) == 0:
		return false
	case seen[e]:
		return true
	}
	seen[e] = true
	for _, d := range defs[e] {
		if d == "loop" || !keyBound(d, defs, seen) {
			return false
		}
	}
	return true
}

// findCalls returns the arguments of each call in src that open matches
// (up to and with its opening parenthesis), other than a definition.
func findCalls(src, open string) [][]string {
	var out [][]string
	for _, loc := range regexp.MustCompile(open).FindAllStringIndex(src, -1) {
		if strings.HasSuffix(strings.TrimRight(src[:loc[0]+1], " \t"), "function") ||
			strings.HasSuffix(strings.TrimSpace(src[:loc[0]]), "function") {
			continue
		}
		depth, end := 1, loc[1]
		for ; end < len(src) && depth > 0; end++ {
			switch src[end] {
			case '(':
				depth++
			case ')':
				depth--
			case '\'', '"':
				end = skipString(src, end)
			}
		}
		out = append(out, splitArgs(src[loc[1]:end-1]))
	}
	return out
}

// splitArgs splits s at its top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '\'', '"':
			i = skipString(s, i)
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// skipString returns the index of the quote that closes the string opening
// at s[i].
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return i
}

// luaStrings lists the quoted strings of src.
func luaStrings(src string) []string {
	var out []string
	for i := 0; i < len(src); i++ {
		if src[i] == '\'' || src[i] == '"' {
			j := skipString(src, i)
			out = append(out, src[i+1:min(j, len(src))])
			i = j
		}
	}
	return out
}

// stripLuaComments drops -- comments, which are not in strings.
func stripLuaComments(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		switch {
		case src[i] == '\'' || src[i] == '"':
			j := skipString(src, i)
			b.WriteString(src[i:min(j+1, len(src))])
			i = j
		case strings.HasPrefix(src[i:], "--"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		default:
			b.WriteByte(src[i])
		}
	}
	return b.String()
}
