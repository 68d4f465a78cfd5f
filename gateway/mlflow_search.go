package gateway

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// MLflow's search grammar (runs/search filter_string and order_by,
// experiments/search filter): conditions joined by AND (MLflow has no OR),
// each an entity key, a comparator and a literal, as in
//
//	metrics.acc > 0.9 and params.lr = '0.01' and tags.`my tag` LIKE 'x%'
//
// Keys are metrics., params., tags. or attributes. (and MLflow's aliases)
// then a name, bare or quoted in backquotes or double quotes.

// searchEntity is what a key names.
type searchEntity string

const (
	entityMetric    searchEntity = "metric"
	entityParam     searchEntity = "param"
	entityTag       searchEntity = "tag"
	entityAttribute searchEntity = "attribute"
)

var entityAliases = map[string]searchEntity{
	"metric": entityMetric, "metrics": entityMetric,
	"param": entityParam, "params": entityParam, "parameter": entityParam, "parameters": entityParam,
	"tag": entityTag, "tags": entityTag,
	"attribute": entityAttribute, "attributes": entityAttribute, "attr": entityAttribute, "run": entityAttribute,
}

// searchKey is one entity key: metrics.acc, attributes.status.
type searchKey struct {
	Entity searchEntity
	Name   string
	// Numeric: a metric, or an attribute that is a time.
	Numeric bool
}

func (k searchKey) String() string { return string(k.Entity) + "s." + k.Name }

// searchCond is one condition of a filter.
type searchCond struct {
	Key    searchKey
	Op     string // = != > >= < <= LIKE ILIKE IN NOT IN
	Str    string
	Num    float64
	IsNum  bool
	List   []string
	regexp *regexp.Regexp // LIKE and ILIKE
}

// searchOrder is one order_by clause.
type searchOrder struct {
	Key  searchKey
	Desc bool
}

// searchToken is one lexeme of a filter.
type searchToken struct {
	kind byte // 'k' key, 's' string, 'n' number, 'o' operator, 'w' word, '(' ')' ','
	text string
	key  searchKey
	num  float64
}

// searchSyntaxError is a filter MLflow's grammar does not read.
type searchSyntaxError struct{ msg string }

func (e *searchSyntaxError) Error() string { return e.msg }

func searchErrorf(format string, args ...any) error {
	return &searchSyntaxError{msg: "Invalid search expression: " + fmt.Sprintf(format, args...)}
}

// tokenizeSearch splits a filter or order_by clause into tokens; keys
// (entity.name) come whole.
func tokenizeSearch(s string) ([]searchToken, error) {
	var out []searchToken
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',':
			out = append(out, searchToken{kind: c, text: string(c)})
			i++
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, searchErrorf("unterminated string starting at position %d", i)
			}
			out = append(out, searchToken{kind: 's', text: s[i+1 : i+1+end]})
			i += end + 2
		case c == '=' || c == '!' || c == '<' || c == '>':
			raw := string(c)
			if i+1 < len(s) && (s[i+1] == '=' || (c == '<' && s[i+1] == '>')) {
				raw += string(s[i+1])
			}
			op := raw
			switch raw {
			case "!":
				return nil, searchErrorf("'!' at position %d is not a comparator (use !=)", i)
			case "<>":
				op = "!="
			case "==":
				op = "="
			}
			out = append(out, searchToken{kind: 'o', text: op})
			i += len(raw)
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				((s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			v, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return nil, searchErrorf("%q at position %d is not a number", s[i:j], i)
			}
			out = append(out, searchToken{kind: 'n', text: s[i:j], num: v})
			i = j
		case c == '_' || unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			word := s[i:j]
			if j >= len(s) || s[j] != '.' {
				out = append(out, searchToken{kind: 'w', text: strings.ToUpper(word), key: searchKey{Entity: entityAttribute, Name: word}})
				i = j
				continue
			}
			entity, ok := entityAliases[strings.ToLower(word)]
			if !ok {
				return nil, searchErrorf("invalid entity type '%s': want metrics, params, tags or attributes", word)
			}
			j++ // the dot
			var name string
			switch {
			case j < len(s) && (s[j] == '`' || s[j] == '"'):
				end := strings.IndexByte(s[j+1:], s[j])
				if end < 0 {
					return nil, searchErrorf("unterminated quoted name after '%s.'", word)
				}
				name = s[j+1 : j+1+end]
				j += end + 2
			default:
				k := j
				for k < len(s) && !strings.ContainsRune(" \t\r\n=!<>(),'\"", rune(s[k])) {
					k++
				}
				name = s[j:k]
				j = k
			}
			if name == "" {
				return nil, searchErrorf("'%s.' names no key", word)
			}
			out = append(out, searchToken{kind: 'k', text: s[i:j], key: searchKey{Entity: entity, Name: name}})
			i = j
		default:
			return nil, searchErrorf("unexpected character %q at position %d", c, i)
		}
	}
	return out, nil
}

// searchKeywords are the words of the grammar, which name no attribute.
var searchKeywords = map[string]bool{"AND": true, "OR": true, "NOT": true, "IN": true, "LIKE": true, "ILIKE": true}

// searchDialect is what one search's keys may name: its attributes (true
// for a number, a time) and whether metrics and params are keys.
type searchDialect struct {
	attributes    map[string]bool
	metricsParams bool
}

// The dialects of runs/search and experiments/search.
var (
	runSearch = searchDialect{metricsParams: true, attributes: map[string]bool{"status": false, "run_name": false, "run_id": false,
		"user_id": false, "lifecycle_stage": false, "experiment_id": false, "start_time": true, "end_time": true}}
	experimentSearch = searchDialect{attributes: map[string]bool{"name": false, "experiment_id": false, "lifecycle_stage": false,
		"creation_time": true, "last_update_time": true}}
)

// resolve checks key k against the dialect and marks whether it is numeric.
func (d searchDialect) resolve(k *searchKey) error {
	switch k.Entity {
	case entityAttribute:
		numeric, ok := d.attributes[k.Name]
		if !ok {
			return searchErrorf("invalid attribute key '%s'", k.Name)
		}
		k.Numeric = numeric
	case entityMetric:
		k.Numeric = true
		fallthrough
	case entityParam:
		if !d.metricsParams {
			return searchErrorf("'%s': this search knows attributes and tags only", k)
		}
	}
	return nil
}

// parseSearchFilter reads a filter ("" is no filter).
func (d searchDialect) parseFilter(s string) ([]searchCond, error) {
	toks, err := tokenizeSearch(s)
	if err != nil {
		return nil, err
	}
	var conds []searchCond
	for i := 0; i < len(toks); {
		if len(conds) > 0 {
			if toks[i].kind != 'w' || toks[i].text != "AND" {
				if toks[i].kind == 'w' && toks[i].text == "OR" {
					return nil, searchErrorf("OR is not supported; MLflow's filters join conditions with AND only")
				}
				return nil, searchErrorf("expected AND, got '%s'", toks[i].text)
			}
			i++
		}
		// A bare name is an attribute (name = 'x'), as in MLflow.
		if i < len(toks) && toks[i].kind == 'w' && !searchKeywords[toks[i].text] {
			toks[i].kind = 'k'
		}
		if i >= len(toks) || toks[i].kind != 'k' {
			got := "the end of the filter"
			if i < len(toks) {
				got = "'" + toks[i].text + "'"
			}
			return nil, searchErrorf("expected a key such as metrics.acc or params.lr, got %s", got)
		}
		c := searchCond{Key: toks[i].key}
		i++
		if i >= len(toks) {
			return nil, searchErrorf("'%s' has no comparator", c.Key)
		}
		switch t := toks[i]; {
		case t.kind == 'o':
			c.Op = t.text
		case t.kind == 'w' && (t.text == "LIKE" || t.text == "ILIKE" || t.text == "IN"):
			c.Op = t.text
		case t.kind == 'w' && t.text == "NOT" && i+1 < len(toks) && toks[i+1].kind == 'w' && toks[i+1].text == "IN":
			c.Op = "NOT IN"
			i++
		default:
			return nil, searchErrorf("'%s' is not a comparator for '%s'", t.text, c.Key)
		}
		i++
		if c.Op == "IN" || c.Op == "NOT IN" {
			if i >= len(toks) || toks[i].kind != '(' {
				return nil, searchErrorf("%s of '%s' needs a list such as ('a', 'b')", c.Op, c.Key)
			}
			i++
			for {
				if i >= len(toks) || toks[i].kind != 's' {
					return nil, searchErrorf("the list of '%s' holds string literals only", c.Key)
				}
				c.List = append(c.List, toks[i].text)
				i++
				if i < len(toks) && toks[i].kind == ',' {
					i++
					continue
				}
				if i >= len(toks) || toks[i].kind != ')' {
					return nil, searchErrorf("the list of '%s' is not closed with ')'", c.Key)
				}
				i++
				break
			}
		} else {
			if i >= len(toks) || (toks[i].kind != 's' && toks[i].kind != 'n') {
				return nil, searchErrorf("'%s %s' needs a string or number value", c.Key, c.Op)
			}
			c.Str, c.Num, c.IsNum = toks[i].text, toks[i].num, toks[i].kind == 'n'
			i++
		}
		if err := d.resolve(&c.Key); err != nil {
			return nil, err
		}
		if err := checkCond(&c); err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// checkCond checks that a condition's comparator and value fit its key,
// as MLflow's SearchUtils does.
func checkCond(c *searchCond) error {
	if c.Key.Numeric {
		if !c.IsNum || c.List != nil || c.Op == "LIKE" || c.Op == "ILIKE" {
			return searchErrorf("'%s' compares with = != > >= < <= and a number, not %s %s", c.Key, c.Op, quoteValue(c))
		}
		return nil
	}
	switch c.Op {
	case ">", ">=", "<", "<=":
		return searchErrorf("'%s' is a string: compare it with = != LIKE ILIKE IN or NOT IN, not %s", c.Key, c.Op)
	}
	if c.IsNum {
		return searchErrorf("'%s' is a string: its value must be quoted, e.g. '%s'", c.Key, c.Str)
	}
	if c.Op == "LIKE" || c.Op == "ILIKE" {
		c.regexp = likeRegexp(c.Str, c.Op == "ILIKE")
	}
	return nil
}

func quoteValue(c *searchCond) string {
	if c.List != nil {
		return "a list"
	}
	return "'" + c.Str + "'"
}

// likeRegexp is SQL's LIKE pattern p (% any run, _ one character).
func likeRegexp(p string, fold bool) *regexp.Regexp {
	var b strings.Builder
	if fold {
		b.WriteString("(?is)")
	} else {
		b.WriteString("(?s)")
	}
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// parseOrderBy reads order_by clauses: "metrics.acc DESC", "start_time".
// A bare name is an attribute, as in MLflow.
func (d searchDialect) parseOrderBy(clauses []string) ([]searchOrder, error) {
	var out []searchOrder
	for _, cl := range clauses {
		toks, err := tokenizeSearch(cl)
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 || len(toks) > 2 {
			return nil, searchErrorf("order_by %q: want a key, then ASC or DESC", cl)
		}
		var o searchOrder
		switch t := toks[0]; t.kind {
		case 'k':
			o.Key = t.key
		case 'w':
			o.Key = t.key
		default:
			return nil, searchErrorf("order_by %q: want a key, then ASC or DESC", cl)
		}
		if err := d.resolve(&o.Key); err != nil {
			return nil, searchErrorf("order_by %q: %s", cl, strings.TrimPrefix(err.Error(), "Invalid search expression: "))
		}
		if len(toks) == 2 {
			switch {
			case toks[1].kind == 'w' && toks[1].text == "DESC":
				o.Desc = true
			case toks[1].kind == 'w' && toks[1].text == "ASC":
			default:
				return nil, searchErrorf("order_by %q: '%s' is neither ASC nor DESC", cl, toks[1].text)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// searchRun is what a filter and order_by see of a run (or experiment).
type searchRun struct {
	Params, Tags map[string]string
	MetricValues map[string]float64
	Attrs        map[string]string
	Times        map[string]float64 // start_time, end_time (ms)
}

// value is k's value in r: a number for metrics and times, else a string.
func (r *searchRun) value(k searchKey) (s string, n float64, ok bool) {
	switch k.Entity {
	case entityMetric:
		n, ok = r.MetricValues[k.Name]
	case entityParam:
		s, ok = r.Params[k.Name]
	case entityTag:
		s, ok = r.Tags[k.Name]
	default:
		if k.Numeric {
			n, ok = r.Times[k.Name]
		} else {
			s, ok = r.Attrs[k.Name]
		}
	}
	return s, n, ok
}

// matches says whether r meets every condition; a run without a key does
// not meet a condition on it.
func (r *searchRun) matches(conds []searchCond) bool {
	for _, c := range conds {
		s, n, ok := r.value(c.Key)
		if !ok {
			return false
		}
		var hit bool
		if c.IsNum {
			switch c.Op {
			case "=":
				hit = n == c.Num
			case "!=":
				hit = n != c.Num
			case ">":
				hit = n > c.Num
			case ">=":
				hit = n >= c.Num
			case "<":
				hit = n < c.Num
			case "<=":
				hit = n <= c.Num
			}
		} else {
			switch c.Op {
			case "=":
				hit = s == c.Str
			case "!=":
				hit = s != c.Str
			case "LIKE", "ILIKE":
				hit = c.regexp.MatchString(s)
			case "IN":
				hit = contains(c.List, s)
			case "NOT IN":
				hit = !contains(c.List, s)
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// compareRuns orders a and b by orders; runs without a key come last.
func compareRuns(a, b *searchRun, orders []searchOrder) int {
	for _, o := range orders {
		as, an, aok := a.value(o.Key)
		bs, bn, bok := b.value(o.Key)
		var c int
		switch {
		case !aok && !bok:
			continue
		case !aok:
			return 1
		case !bok:
			return -1
		case o.Key.Numeric:
			c = cmp.Compare(an, bn)
		default:
			c = strings.Compare(as, bs)
		}
		if o.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
