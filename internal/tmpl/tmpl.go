// Package tmpl fills in job-spec strings (environment values and command
// arguments) from a webhook payload, with a restricted text/template.
//
//	env:     {"GIT_SHA": "{{ .payload.after }}"}
//	command: ["train", "--repo", "{{ .payload.repository.full_name }}"]
//
// Each rendered string is used whole, as one environment value or one argv
// element; it is never spliced into a shell command line, so a payload holding
// "$(rm -rf /)" or "; reboot" stays inert text. Do not pass rendered strings
// to "sh -c".
//
// The template language is text/template with these limits:
//
//   - a field that is missing, or read through null or a value that is not
//     an object, is an error naming the path and the step that failed
//     ("cannot read .payload.head_commit.id: .payload.head_commit is null"),
//     so a delivery without the fields a trigger needs is rejected, not run
//     with empty values; index is strict in the same way;
//   - only these functions: and, or, not, eq, ne, lt, le, gt, ge, index, len,
//     slice, print, printf; call (which could run a function found in the
//     data), html, js, urlquery and println are refused, and nothing is added;
//   - range, define, template and block are refused, so rendering time is
//     bounded by the template's size (range over an integer would loop for as
//     long as it was told to);
//   - print and printf, the only functions that make new values, may make
//     MaxWorkBytes (1 MiB) in all per RenderArgs, RenderMap or Render call,
//     counted before each call from an upper bound of its result, so values
//     kept in variables and fed to further calls are bounded too (see
//     budget.go); printf formats may not use argument indexes (%[2]d) or *
//     widths;
//   - templates and rendered strings are capped at 64 KiB each, all the
//     strings of one spec at 1 MiB, and a NUL byte in a result is an error;
//   - data must be decoded JSON: maps with string keys, slices, strings,
//     numbers, booleans and null; there are no methods or functions in it.
//
// Render errors are *Error values whose Reason speaks of the template and
// of JSON (paths, null, objects and lists), never of Go types.
//
// Values render as they read in the JSON: integers without an exponent
// (2432232314, not 2.432232314e+09), booleans as true and false, and null as
// the empty string. Integers become int64 and other numbers float64, so
// {{ if gt .payload.size 10 }} works.
package tmpl

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// Limits on templates and their output.
const (
	// MaxTemplateBytes caps one template's length.
	MaxTemplateBytes = 64 << 10
	// MaxOutputBytes caps one rendered string.
	MaxOutputBytes = 64 << 10
	// MaxTotalOutputBytes caps all the strings rendered by one RenderArgs or
	// RenderMap call.
	MaxTotalOutputBytes = 1 << 20
	// MaxWorkBytes caps what print and printf may make in all during one
	// RenderArgs, RenderMap or Render call, whether it is written out, kept
	// in a variable or passed to another call.
	MaxWorkBytes = 1 << 20
	// maxDepth caps how deeply data may nest.
	maxDepth = 128
)

// Errors returned by this package, wrapped with the reason; test with
// errors.Is.
var (
	// ErrInvalidTemplate means a template cannot be parsed, is too long, or
	// uses something this package refuses. It is a fault in the trigger.
	ErrInvalidTemplate = errors.New("invalid template")
	// ErrRender means a valid template failed on this data: a missing key,
	// a field of the wrong type, a result too long. It is usually a fault in
	// the delivery.
	ErrRender = errors.New("render template")
	// ErrInvalidData means the data is not decoded JSON.
	ErrInvalidData = errors.New("invalid template data")
)

// allowedFuncs are the text/template builtins a template may call.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
	"index": true, "len": true, "slice": true, "print": true, "printf": true,
}

// DecodePayload decodes a webhook body that must be one JSON object, keeping
// numbers exact (json.Number). Errors wrap ErrInvalidData. Callers should cap
// the body's size first.
func DecodePayload(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object: %v", ErrInvalidData, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: payload is null, want a JSON object", ErrInvalidData)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: payload has data after its JSON object", ErrInvalidData)
	}
	return m, nil
}

// Check parses a template and reports whether this package would run it,
// without data: for checking a trigger when it is created. Errors wrap
// ErrInvalidTemplate.
func Check(tpl string) error {
	_, err := compile("template", tpl, &budget{})
	return err
}

// Render renders tpl over data, which must be decoded JSON (see
// DecodePayload), and returns the result. Errors wrap ErrInvalidTemplate,
// ErrInvalidData or ErrRender; a render error is an *Error.
func Render(tpl string, data map[string]any) (string, error) {
	t, err := compile("template", tpl, &budget{left: MaxWorkBytes})
	if err != nil {
		return "", err
	}
	clean, err := sanitizeRoot(data)
	if err != nil {
		return "", err
	}
	return execute("", t, tpl, clean)
}

// RenderArgs renders each element of args (a command's argv) over data and
// returns the results, one element each. Errors name the element, as
// "args[2]", and wrap ErrInvalidTemplate, ErrInvalidData or ErrRender; one
// that comes from rendering an element is an *Error.
func RenderArgs(args []string, data map[string]any) ([]string, error) {
	ts := make([]*template.Template, len(args))
	b := &budget{left: MaxWorkBytes}
	for i, a := range args {
		t, err := compile(fmt.Sprintf("args[%d]", i), a, b)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	clean, err := sanitizeRoot(data)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(args))
	total := 0
	for i, t := range ts {
		if out[i], err = execute(fmt.Sprintf("args[%d]", i), t, args[i], clean); err != nil {
			return nil, err
		}
		if total += len(out[i]); total > MaxTotalOutputBytes {
			return nil, fmt.Errorf("%w: args: results exceed %d bytes in all", ErrRender, MaxTotalOutputBytes)
		}
	}
	return out, nil
}

// RenderMap renders each value of fields (an environment, say) over data and
// returns a map with the same keys, which are not templates. Keys are
// rendered in sorted order, so the first error is the same every time; it
// names the key and wraps ErrInvalidTemplate, ErrInvalidData or ErrRender;
// one that comes from rendering a value is an *Error.
func RenderMap(fields map[string]string, data map[string]any) (map[string]string, error) {
	keys := slices.Sorted(maps.Keys(fields))
	ts := make([]*template.Template, len(keys))
	b := &budget{left: MaxWorkBytes}
	for i, k := range keys {
		t, err := compile(k, fields[k], b)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	clean, err := sanitizeRoot(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(fields))
	total := 0
	for i, k := range keys {
		v, err := execute(k, ts[i], fields[k], clean)
		if err != nil {
			return nil, err
		}
		if total += len(v); total > MaxTotalOutputBytes {
			return nil, fmt.Errorf("%w: results exceed %d bytes in all", ErrRender, MaxTotalOutputBytes)
		}
		out[k] = v
	}
	return out, nil
}

// compile parses tpl and checks it against the rules above; its print and
// printf spend b. It returns nil for a template without actions, which
// execute returns as it is.
func compile(name, tpl string, b *budget) (*template.Template, error) {
	if len(tpl) > MaxTemplateBytes {
		return nil, fmt.Errorf("%w: %s: longer than %d bytes", ErrInvalidTemplate, name, MaxTemplateBytes)
	}
	if !strings.Contains(tpl, "{{") {
		return nil, nil
	}
	t, err := template.New(name).
		Option("missingkey=error").
		Funcs(template.FuncMap{"index": strictIndex, "print": b.print, "printf": b.printf, fieldFunc: field}).
		Parse(tpl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
	}
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("%w: %s: define and block are not allowed", ErrInvalidTemplate, name)
	}
	if t.Tree != nil {
		if err := checkNode(t.Tree, t.Tree.Root); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
		}
		rewriteFields(t.Tree.Root)
	}
	return t, nil
}

// checkNode refuses what the package documentation lists as refused.
func checkNode(tree *parse.Tree, n parse.Node) error {
	refuse := func(what string) error {
		loc, _ := tree.ErrorContext(n)
		return fmt.Errorf("%s: %s", loc, what)
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNode(tree, c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkNode(tree, n.Pipe)
	case *parse.IfNode:
		return checkBranch(tree, &n.BranchNode)
	case *parse.WithNode:
		return checkBranch(tree, &n.BranchNode)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkNode(tree, c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := checkNode(tree, a); err != nil {
				return err
			}
		}
		// A literal format that printf would refuse is refused now.
		if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "printf" && len(n.Args) > 1 {
			if f, ok := n.Args[1].(*parse.StringNode); ok {
				if _, err := printfBound(f.Text, nil, math.MaxInt); err != nil {
					return refuse("printf: " + err.Error())
				}
			}
		}
	case *parse.ChainNode:
		return checkNode(tree, n.Node)
	case *parse.IdentifierNode:
		if !allowedFuncs[n.Ident] {
			return refuse(fmt.Sprintf("function %q is not allowed", n.Ident))
		}
	case *parse.RangeNode:
		return refuse("range is not allowed; use index to pick elements")
	case *parse.TemplateNode:
		return refuse("template and block are not allowed")
	case *parse.TextNode, *parse.CommentNode, *parse.FieldNode, *parse.VariableNode,
		*parse.DotNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
	default:
		return refuse(fmt.Sprintf("%T is not allowed", n))
	}
	return nil
}

func checkBranch(tree *parse.Tree, b *parse.BranchNode) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := checkNode(tree, n); err != nil {
			return err
		}
	}
	return nil
}

// errTooLong stops a template whose output passes MaxOutputBytes.
var errTooLong = errors.New("output too long")

// cappedBuffer is a bytes.Buffer that refuses to grow past MaxOutputBytes.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxOutputBytes {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// execute runs t, compiled from tpl, over sanitized data; name is the
// template's name for errors.
func execute(name string, t *template.Template, tpl string, data map[string]any) (string, error) {
	if t == nil {
		return tpl, checkResult(name, tpl)
	}
	var buf cappedBuffer
	if err := t.Execute(&buf, data); err != nil {
		return "", execError(name, tpl, t.Tree, err)
	}
	out := buf.String()
	return out, checkResult(name, out)
}

func checkResult(name, out string) error {
	if strings.IndexByte(out, 0) >= 0 {
		return renderError(name, "result holds a NUL byte")
	}
	return nil
}

// strictIndex replaces the index builtin: a missing key or an index out of
// range is an error, as a missing field is, instead of a zero value that
// would render as "<no value>". Errors name the step, as ["commits"][0].
func strictIndex(item any, keys ...any) (any, error) {
	v, path := item, ""
	for _, k := range keys {
		at := cmp.Or(path, "the value")
		switch c := v.(type) {
		case map[string]any:
			key, ok := k.(string)
			if n, isNull := k.(null); isNull {
				key, ok = string(n), true
			}
			if !ok {
				return nil, fmt.Errorf("%s is an object: its keys are strings, not %s", at, kindOf(k))
			}
			path += "[" + quoteKey(key) + "]"
			if v, ok = c[key]; !ok {
				return nil, fmt.Errorf("%s is missing", path)
			}
		case []any:
			i, ok := toInt(k)
			if !ok {
				return nil, fmt.Errorf("%s is a list: its indexes are whole numbers, not %s", at, kindOf(k))
			}
			if i < 0 || i >= int64(len(c)) {
				return nil, fmt.Errorf("index %d is out of range: %s has %d elements", i, at, len(c))
			}
			path += fmt.Sprintf("[%d]", i)
			v = c[i]
		case null:
			return nil, fmt.Errorf("%s is null", at)
		default:
			return nil, fmt.Errorf("%s is %s, not an object or a list", at, kindOf(v))
		}
	}
	return v, nil
}

func toInt(k any) (int64, bool) {
	switch k := k.(type) {
	case int:
		return int64(k), true
	case int64:
		return k, true
	}
	return 0, false
}

func sanitizeRoot(data map[string]any) (map[string]any, error) {
	v, err := sanitize(data, 0)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// sanitize returns a copy of decoded JSON with numbers as int64 or float64
// and null as null(""), and an error wrapping ErrInvalidData, with the path
// to the value, for anything that is not decoded JSON.
func sanitize(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested more than %d deep", ErrInvalidData, maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return null(""), nil
	case string, bool, int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		return number(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		if f, err := x.Float64(); err == nil {
			return number(f), nil
		}
		return string(x), nil // out of float64's range: keep the text
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := sanitize(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := sanitize(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: a value of type %T", ErrInvalidData, v)
}

// number returns f as an int64 when it is a whole number that float64 holds
// exactly, so that it prints without an exponent.
func number(f float64) any {
	const exact = 1 << 53
	if f == math.Trunc(f) && f >= -exact && f <= exact {
		return int64(f)
	}
	return f
}
