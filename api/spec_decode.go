package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
)

// SpecError is why DecodeJobSpec refused a spec. Syntax is set when the
// input is not one well-formed JSON object (or YAML mapping) at all, as
// opposed to a well-formed spec with a wrong field; the REST API answers 400
// for the first and 422 for the second.
type SpecError struct {
	Syntax bool
	Msg    string
}

func (e *SpecError) Error() string { return e.Msg }

func syntaxErr(format string, args ...any) *SpecError {
	return &SpecError{Syntax: true, Msg: fmt.Sprintf(format, args...)}
}

func fieldErr(format string, args ...any) *SpecError {
	return &SpecError{Msg: fmt.Sprintf(format, args...)}
}

// maxSpecDepth bounds how deeply a spec's values nest; a real spec is four
// levels deep.
const maxSpecDepth = 32

// DecodeJobSpec reads a job spec written as JSON or as YAML 1.2 (a file for
// `jobgate submit -f`), strictly: a field the spec does not have, a name in
// another case, a key given twice, a value of the wrong kind and anything
// after the spec (a second JSON value, a second YAML document) are refused
// with a *SpecError naming the field. YAML 1.2 means that N, Y, yes, no, on
// and off are strings, as they look; a number where a string belongs (an env
// value such as `EPOCHS: 10`) is refused with a hint to quote it, never
// turned into a string behind the writer's back.
func DecodeJobSpec(data []byte) (JobSpec, error) {
	if json.Valid(data) {
		return decodeJSONSpec(data, false)
	}
	return decodeYAMLSpec(data)
}

// DecodeJobSpecJSON is DecodeJobSpec for JSON only: the REST API's request
// bodies (the CLI turns YAML into JSON before it sends a spec).
func DecodeJobSpecJSON(data []byte) (JobSpec, error) {
	return decodeJSONSpec(data, false)
}

func decodeYAMLSpec(data []byte) (JobSpec, error) {
	var spec JobSpec
	if err := decodeYAMLStrict(data, &spec, "job spec"); err != nil {
		return JobSpec{}, err
	}
	return spec, nil
}

// decodeYAMLStrict reads YAML 1.2 into out (a pointer) through
// decodeStrict; noun names the document in the errors ("job spec").
func decodeYAMLStrict(data []byte, out any, noun string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return syntaxErr("%s is empty", noun)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var tree any
	if err := dec.Decode(&tree); err != nil {
		if errors.Is(err, io.EOF) {
			return syntaxErr("%s is empty", noun)
		}
		return syntaxErr("yaml: %s", yaml.FormatError(err, false, true))
	}
	var next any
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return syntaxErr("%s holds more than one YAML document (a second one after ---); submit one spec per file", noun)
	}
	if tree == nil {
		return syntaxErr("%s is empty", noun)
	}
	js, err := json.Marshal(tree)
	if err != nil {
		// .inf and .nan, which no field takes.
		return fieldErr("%s holds a value JSON cannot carry: %v", noun, err)
	}
	return decodeStrict(js, out, noun, true)
}

// decodeJSONSpec is the job spec's strict decoder; yamlWords says which
// words the errors use for kinds of values.
func decodeJSONSpec(data []byte, yamlWords bool) (JobSpec, error) {
	var spec JobSpec
	if err := decodeStrict(data, &spec, "job spec", yamlWords); err != nil {
		return JobSpec{}, err
	}
	return spec, nil
}

// decodeStrict is the one strict decoder every spec (a job's, a sweep's)
// and both formats end in: it decodes data into out, a pointer to a
// struct; noun names the document in the errors.
func decodeStrict(data []byte, out any, noun string, yamlWords bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return syntaxErr("%s is empty", noun)
	}
	if !utf8.Valid(data) {
		// encoding/json would turn the bad bytes into U+FFFD without a word.
		return syntaxErr("%s is not valid UTF-8", noun)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return syntaxErr("%s is not valid JSON: %v", noun, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return syntaxErr("%s is followed by more data; send one JSON object", noun)
	}
	if tree == nil {
		return syntaxErr("%s is empty (null)", noun)
	}
	if err := checkKeys(data); err != nil {
		return err
	}
	if _, isObj := tree.(map[string]any); !isObj {
		return rootKindErr(tree, noun, yamlWords)
	}
	t := reflect.TypeOf(out).Elem()
	if err := checkValue(tree, t, "", yamlWords, false); err != nil {
		// Again in key order, so the same spec always names the same field.
		return checkValue(tree, t, "", yamlWords, true)
	}
	// checkValue has seen every field and kind; what is left for the
	// decoder is a number out of its field's range.
	sd := json.NewDecoder(bytes.NewReader(data))
	sd.DisallowUnknownFields()
	if err := sd.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fieldErr("field %s: %s does not fit %s", cmp.Or(te.Field, noun), te.Value, kindWords(te.Type, yamlWords))
		}
		return fieldErr("decode %s: %v", noun, err)
	}
	return nil
}

// checkKeys refuses a key given twice in one object of data (one valid
// JSON value, which the decoder has seen), which encoding/json would let
// the last of win, and values nested past maxSpecDepth. It names the key
// with its path.
func checkKeys(data []byte) error {
	type frame struct {
		obj  bool
		keys map[string]struct{}
		key  string // the object's current key
		idx  int    // the array's current index
	}
	path := func(stack []frame) string {
		p := ""
		for _, f := range stack {
			if f.obj {
				p = joinPath(p, f.key)
			} else {
				p = fmt.Sprintf("%s[%d]", p, f.idx)
			}
		}
		return p
	}
	var stack []frame
	wantKey := false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			if len(stack) >= maxSpecDepth {
				return fieldErr("field %s nests more than %d levels deep", cmp.Or(path(stack), "job spec"), maxSpecDepth)
			}
			stack = append(stack, frame{obj: data[i] == '{'})
			wantKey = data[i] == '{'
		case '}', ']':
			stack = stack[:len(stack)-1]
			wantKey = false
		case ',':
			if top := &stack[len(stack)-1]; top.obj {
				wantKey = true
			} else {
				top.idx++
			}
		case '"':
			end, escaped := i+1, false
			for ; data[end] != '"'; end++ {
				if data[end] == '\\' {
					end, escaped = end+1, true
				}
			}
			if wantKey {
				top := &stack[len(stack)-1]
				key := string(data[i+1 : end])
				if escaped {
					_ = json.Unmarshal(data[i:end+1], &key)
				}
				top.key = key
				if _, dup := top.keys[key]; dup {
					return fieldErr("field %q is given twice", path(stack))
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				top.keys[key] = struct{}{}
				wantKey = false
			}
			i = end
		}
	}
	return nil
}

// checkValue reports the first value in v (a decoded tree, numbers as
// json.Number) that type t
// does not take: a key t has no JSON field for (exact names only, with the
// field that was probably meant), or a value of the wrong kind. null is the
// zero value, as encoding/json has it.
func checkValue(v any, t reflect.Type, path string, yamlWords, sorted bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || t.Kind() == reflect.Interface {
		return nil
	}
	ok := true
	switch t.Kind() {
	case reflect.String:
		_, ok = v.(string)
	case reflect.Bool:
		_, ok = v.(bool)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, isNum := v.(json.Number)
		ok = isNum && !strings.ContainsAny(n.String(), ".eE")
	case reflect.Float32, reflect.Float64:
		_, ok = v.(json.Number)
	case reflect.Slice, reflect.Array:
		arr, isArr := v.([]any)
		if ok = isArr; ok {
			for i, e := range arr {
				if err := checkValue(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), yamlWords, sorted); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		obj, isObj := v.(map[string]any)
		if ok = isObj; ok {
			for _, k := range keysOf(obj, sorted) {
				if err := checkValue(obj[k], t.Elem(), joinPath(path, k), yamlWords, sorted); err != nil {
					return err
				}
			}
		}
	case reflect.Struct:
		obj, isObj := v.(map[string]any)
		if ok = isObj; ok {
			fields := jsonFields(t)
			for _, k := range keysOf(obj, sorted) {
				p := joinPath(path, k)
				ft, known := fields[k]
				if !known {
					return unknownField(p, k, fields)
				}
				if err := checkValue(obj[k], ft, p, yamlWords, sorted); err != nil {
					return err
				}
			}
		}
	}
	if !ok {
		return kindErr(v, t, path, yamlWords)
	}
	return nil
}

// keysOf is obj's keys, sorted when asked.
func keysOf(obj map[string]any, sorted bool) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	if sorted {
		slices.Sort(keys)
	}
	return keys
}

// kindErr says that the value at path is of the wrong kind for t, in the
// words of the format the spec was written in.
func kindErr(v any, t reflect.Type, path string, yamlWords bool) error {
	got := valueKind(v, yamlWords)
	want := kindWords(t, yamlWords)
	if path == "" {
		return rootKindErr(v, "job spec", yamlWords)
	}
	if !yamlWords {
		return fieldErr("%s must be %s, not %s", path, want, got)
	}
	msg := fmt.Sprintf("field %s: got %s, want %s", path, strings.TrimPrefix(strings.TrimPrefix(got, "a "), "an "), want)
	switch v.(type) {
	case json.Number, bool:
		if t.Kind() == reflect.String {
			// YAML's `SEED: 1` or `DEBUG: true` is a classic slip.
			msg += fmt.Sprintf(" (quote it: \"%v\")", v)
		}
	}
	return fieldErr("%s", msg)
}

// rootKindErr says that the document is not an object (a mapping).
func rootKindErr(v any, noun string, yamlWords bool) error {
	got := valueKind(v, yamlWords)
	if !yamlWords {
		return syntaxErr("%s must be a JSON object, not %s", noun, got)
	}
	return syntaxErr("%s must be a mapping of fields, got %s", noun, strings.TrimPrefix(strings.TrimPrefix(got, "a "), "an "))
}

// valueKind names a tree value's kind: "a JSON array", or in YAML's words
// "a array" (the caller drops the article).
func valueKind(v any, yamlWords bool) string {
	k := "string"
	switch v.(type) {
	case json.Number:
		k = "number"
	case bool:
		k = "bool"
		if !yamlWords {
			k = "boolean"
		}
	case []any:
		k = "array"
	case map[string]any:
		k = "object"
	}
	if yamlWords {
		return "a " + k
	}
	return "a JSON " + k
}

// kindWords says what a Go type wants: in YAML's words ("a mapping", "a
// list of strings") or JSON's ("an object", "an array of strings").
func kindWords(t reflect.Type, yamlWords bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	article := func(s string) string {
		if strings.IndexByte("aeiou", s[0]) >= 0 {
			return "an " + s
		}
		return "a " + s
	}
	plural := func(s string) string {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "a "), "an ")
		return s + "s"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		if yamlWords {
			return "true or false"
		}
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if yamlWords {
			return "a list of " + plural(kindWords(t.Elem(), yamlWords))
		}
		return "an array of " + plural(kindWords(t.Elem(), yamlWords))
	case reflect.Map, reflect.Struct:
		if yamlWords {
			return "a mapping"
		}
		return "an object"
	}
	return article(t.String())
}

func unknownField(path, key string, fields map[string]reflect.Type) error {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range fields {
			if n == "batch" && path == key {
				continue // a job spec's batch is set by the batch API, never by hand
			}
			if !yield(n) {
				return
			}
		}
	})
	if s := closest(key, names); s != "" {
		return fieldErr("unknown field %q (did you mean %q?)", path, s)
	}
	return fieldErr("unknown field %q (known fields: %s)", path, strings.Join(names, ", "))
}

// jsonFields maps a struct's JSON field names to their types, as
// encoding/json names them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		m[cmp.Or(name, sf.Name)] = sf.Type
	}
	fieldCache.Store(t, m)
	return m
}

// fieldCache holds jsonFields' answers, by type.
var fieldCache sync.Map

// closest is the name a mistyped key most likely meant: the same name in
// another case, or one at most two edits away; "" if none is close.
func closest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return n
		}
		if d := editDistance(strings.ToLower(key), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
