package tmpl

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// Error is a template that failed on its data, as RenderArgs, RenderMap and
// Render return it. Its Reason is in the terms of the template and of JSON
// (a field path, "null", "an object"), never in Go's.
type Error struct {
	// Kind is ErrRender.
	Kind error
	// Name is the string that failed: "args[2]" for RenderArgs, the key for
	// RenderMap, "" for Render.
	Name string
	// Reason says what went wrong, as `cannot read .payload.head_commit.id:
	// .payload.head_commit is null`.
	Reason string
}

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Kind.Error() + ": " + e.Reason
	}
	return e.Kind.Error() + ": " + e.Name + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Kind }

// maxReasonBytes caps a Reason: it goes back to the sender of a delivery and
// into its history, and a message may quote data.
const maxReasonBytes = 512

func renderError(name, reason string) *Error {
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "") + "..."
	}
	return &Error{Kind: ErrRender, Name: name, Reason: reason}
}

// null is what a JSON null becomes in the data: it prints, compares and
// tests as "", and field and index can tell it from a string.
type null string

// kindOf names v's JSON type, for messages.
func kindOf(v any) string {
	switch v.(type) {
	case null:
		return "null"
	case string:
		return "a string"
	case int, int64, float64, complex128:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case nil:
		return "no value"
	}
	return "a value of another kind"
}

// fieldFunc is the function compile makes every field access call; a
// template cannot name it (checkNode allows only allowedFuncs).
const fieldFunc = "_field"

// field returns v.names[0].names[1]..., with an error naming the path, and
// the step that is null, missing or not an object. base is how the template
// wrote v ("" for dot, "$r", "(index .payload.commits 0)").
func field(base string, v any, names ...string) (any, error) {
	for i, name := range names {
		m, ok := v.(map[string]any)
		if !ok {
			at := fieldPath(base, names[:i])
			if _, isNull := v.(null); isNull {
				return nil, pathErrorf("cannot read %s: %s is null", fieldPath(base, names), at)
			}
			return nil, pathErrorf("cannot read %s: %s is %s, not an object", fieldPath(base, names), at, kindOf(v))
		}
		if v, ok = m[name]; !ok {
			at := ""
			if p := fieldPath(base, names[:i]); p != "." {
				at = " from " + p
			}
			return nil, pathErrorf("cannot read %s: %s is missing%s", fieldPath(base, names), quoteKey(name), at)
		}
	}
	return v, nil
}

// fieldPath writes a field access as a template does.
func fieldPath(base string, names []string) string {
	if len(names) == 0 {
		return cmp.Or(base, ".")
	}
	return base + "." + strings.Join(names, ".")
}

// quoteKey quotes a key for a message, shortened if it is long.
func quoteKey(k string) string {
	if len(k) > 64 {
		return strconv.Quote(strings.ToValidUTF8(k[:64], "")) + "..."
	}
	return strconv.Quote(k)
}

// rewriteFields makes each field access that reads a value (.a.b, $x.a,
// (pipeline).a) a call to fieldFunc, as html/template rewrites a tree to add
// its escapers, so that an access through null or a missing key fails with
// a message naming the path instead of text/template's, which names Go
// types ("can't evaluate field id in type interface {}"). A field in the
// place of a function (given arguments, or piped into) is left as it is:
// data has no methods, so text/template refuses it anyway.
func rewriteFields(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			rewriteFields(c)
		}
	case *parse.ActionNode:
		rewriteFields(n.Pipe)
	case *parse.IfNode:
		rewriteBranch(&n.BranchNode)
	case *parse.WithNode:
		rewriteBranch(&n.BranchNode)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for i, c := range n.Cmds {
			for j, a := range c.Args {
				if j == 0 && (len(c.Args) > 1 || i > 0) {
					rewriteFields(a) // a function name, or a field used as one
					continue
				}
				c.Args[j] = fieldCall(a)
			}
		}
	}
}

func rewriteBranch(b *parse.BranchNode) {
	rewriteFields(b.Pipe)
	rewriteFields(b.List)
	rewriteFields(b.ElseList)
}

// fieldCall returns what replaces the argument a: a call of fieldFunc if a
// reads a field, else a itself.
func fieldCall(a parse.Node) parse.Node {
	switch a := a.(type) {
	case *parse.FieldNode:
		return callField(a.Pos, "", &parse.DotNode{NodeType: parse.NodeDot, Pos: a.Pos}, a.Ident)
	case *parse.VariableNode:
		if len(a.Ident) < 2 {
			return a
		}
		v := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: a.Pos, Ident: a.Ident[:1]}
		return callField(a.Pos, a.Ident[0], v, a.Ident[1:])
	case *parse.ChainNode:
		base := a.Node.String()
		if _, ok := a.Node.(*parse.PipeNode); ok {
			base = "(" + base + ")"
		}
		rewriteFields(a.Node)
		return callField(a.Pos, base, a.Node, a.Field)
	case *parse.PipeNode:
		rewriteFields(a)
	}
	return a
}

func callField(pos parse.Pos, base string, v parse.Node, names []string) *parse.PipeNode {
	str := func(s string) *parse.StringNode {
		return &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(s), Text: s}
	}
	args := []parse.Node{parse.NewIdentifier(fieldFunc).SetPos(pos), str(base), v}
	for _, n := range names {
		args = append(args, str(n))
	}
	return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos,
		Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: pos, Args: args}}}
}

// goTerms rewrites what text/template's own messages say in Go's terms.
var goTerms = strings.NewReplacer(
	"map[string]interface {}", "object",
	"[]interface {}", "list",
	"interface {}", "value",
	"reflect.Value", "value",
	"tmpl.null", "null",
	"int64", "number",
	"float64", "number",
	"complex128", "number",
	"error calling ", "",
)

var (
	// locationRE finds the line and column in text/template's "template:
	// NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE".
	locationRE = regexp.MustCompile(`^template: .*?:(\d+):(\d+): executing `)
	goWordsRE  = regexp.MustCompile(`\b(int|bool)\b`)
)

// pathError is an error from field: its message names the path.
type pathError struct{ msg string }

func (e *pathError) Error() string { return e.msg }

func pathErrorf(format string, args ...any) error {
	return &pathError{fmt.Sprintf(format, args...)}
}

// execError turns an error from executing tree, parsed from tpl as name,
// into an *Error whose reason names the field path, or shows the action that
// failed, without Go's type names.
func execError(name, tpl string, tree *parse.Tree, err error) *Error {
	if errors.Is(err, errTooLong) {
		return renderError(name, fmt.Sprintf("result longer than %d bytes", MaxOutputBytes))
	}
	var pe *pathError
	if errors.As(err, &pe) {
		return renderError(name, pe.msg)
	}
	msg := err.Error()
	where := ""
	var ee template.ExecError
	if errors.As(err, &ee) {
		msg = ee.Err.Error()
		if m := locationRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			off := lineStart(tpl, line) + col
			where = "at " + actionAt(tpl, off) + ": "
			msg = afterNode(tree, parse.Pos(off), msg)
		}
	}
	msg = goWordsRE.ReplaceAllStringFunc(goTerms.Replace(msg), func(w string) string {
		return map[string]string{"int": "number", "bool": "boolean"}[w]
	})
	if strings.Contains(msg, "non-comparable type") {
		// eq prints the value it cannot compare, in Go's syntax.
		msg = "eq: cannot compare lists or objects; compare their fields"
	}
	return renderError(name, where+msg)
}

// afterNode returns what follows "at <NODE>: " in msg, NODE being one of
// the nodes of tree at off; msg itself if there is none.
func afterNode(tree *parse.Tree, off parse.Pos, msg string) string {
	out := msg
	walk(tree.Root, func(n parse.Node) {
		if n.Position() != off || out != msg {
			return
		}
		if _, rest, ok := strings.Cut(msg, " at <"+n.String()+">: "); ok {
			out = rest
		}
	})
	return out
}

// walk calls visit for n and every node below it.
func walk(n parse.Node, visit func(parse.Node)) {
	if n == nil || reflectNil(n) {
		return
	}
	visit(n)
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			walk(c, visit)
		}
	case *parse.ActionNode:
		walk(n.Pipe, visit)
	case *parse.IfNode:
		walk(n.Pipe, visit)
		walk(n.List, visit)
		walk(n.ElseList, visit)
	case *parse.WithNode:
		walk(n.Pipe, visit)
		walk(n.List, visit)
		walk(n.ElseList, visit)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			walk(c, visit)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, visit)
		}
	case *parse.ChainNode:
		walk(n.Node, visit)
	}
}

// reflectNil reports a typed nil list or pipe, as an empty else branch is.
func reflectNil(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		return n == nil
	case *parse.PipeNode:
		return n == nil
	}
	return false
}

// lineStart is the offset of line (from 1) in tpl.
func lineStart(tpl string, line int) int {
	off := 0
	for range line - 1 {
		i := strings.IndexByte(tpl[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return off
}

// actionAt returns the action of tpl around offset off, shortened if long.
func actionAt(tpl string, off int) string {
	off = min(max(off, 0), len(tpl))
	start := strings.LastIndex(tpl[:off], "{{")
	end := strings.Index(tpl[off:], "}}")
	if start < 0 || end < 0 {
		return fmt.Sprintf("offset %d", off)
	}
	a := tpl[start : off+end+2]
	if len(a) > 60 {
		a = strings.ToValidUTF8(a[:57], "") + "..."
	}
	return a
}
