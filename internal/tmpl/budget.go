package tmpl

import (
	"fmt"
	"unicode/utf8"
)

// Why a budget, and why only print and printf count against it.
//
// A template can only make new values with print and printf: a field, a
// variable, index and slice refer to the data (slice shares its memory),
// len and the comparisons make a number or a boolean, and and/or return one
// of their arguments. The output is capped as it is written, and text and
// literals come from the template, which is capped too. So every byte a
// rendering holds besides the data and the template was made by a print or
// printf call; a variable only keeps such a result alive. Counting what
// those two calls make, before they make it, bounds the memory of a render
// however the results are kept, combined, nested or multiplied: the 187-byte
// template that went from 1 MB to 10 MB to 100 MB in three variables stops
// at the first call that would pass the budget.
//
// The count before the call is an upper bound worked out from the format,
// the widths and precisions and the arguments (fmt caps a width at about
// 10^7, but once per element of a list, so "%1000000v" of a long list would
// otherwise be terabytes); after the call the budget is charged what was
// really made. Argument indexes (%[2]d) and * widths are refused, so each
// verb takes the next argument and the bound follows fmt exactly.
// FuzzPrintfBound checks the bound against fmt.

// budget is what print and printf may still make during one render call.
type budget struct{ left int }

// charge refuses a call that could make more than is left.
func (b *budget) charge(need int) error {
	if need > b.left {
		return fmt.Errorf("could make more than the %d bytes left of the %d that print and printf may make in one rendering",
			b.left, MaxWorkBytes)
	}
	return nil
}

// printf is text/template's printf (fmt.Sprintf) under the budget.
func (b *budget) printf(format string, args ...any) (string, error) {
	need, err := printfBound(format, args, b.left)
	if err != nil {
		return "", err
	}
	if err := b.charge(need); err != nil {
		return "", err
	}
	out := fmt.Sprintf(format, args...)
	b.left -= len(out)
	return out, nil
}

// print is text/template's print (fmt.Sprint) under the budget.
func (b *budget) print(args ...any) (string, error) {
	need := 0
	for _, a := range args {
		n, err := valueBound(a, verbSpec{verb: 'v'}, 0, b.left-need)
		if err != nil {
			return "", err
		}
		need += n + 1 // a space between operands
		if need > b.left {
			break
		}
	}
	if err := b.charge(need); err != nil {
		return "", err
	}
	out := fmt.Sprint(args...)
	b.left -= len(out)
	return out, nil
}

// verbSpec is one %-verb of a format: the verb and what bears on its length.
type verbSpec struct {
	verb  rune
	sharp bool // '#': for %v, Go syntax, which quotes strings
	wid   int  // width, 0 if none
	prec  int  // precision, 0 if none
}

// printfBound returns an upper bound on len(fmt.Sprintf(format, args...)),
// or a number over limit as soon as it passes limit. It follows fmt's
// doPrintf: literal text, then for each verb its flags, width, precision and
// the next argument; %% takes none; a verb without an argument prints
// "%!v(MISSING)", and arguments left over print "%!(EXTRA type=value, ...)".
func printfBound(format string, args []any, limit int) (int, error) {
	refuse := func(what string) (int, error) {
		return 0, fmt.Errorf("%s are not allowed in a format", what)
	}
	total, argNum := 0, 0
	end := len(format)
	for i := 0; i < end && total <= limit; {
		lasti := i
		for i < end && format[i] != '%' {
			i++
		}
		total += i - lasti
		if i >= end {
			break
		}
		i++ // the '%'
		var v verbSpec
	flags:
		for ; i < end; i++ {
			switch format[i] {
			case '#':
				v.sharp = true
			case '0', '+', '-', ' ':
			default:
				break flags
			}
		}
		if i < end && format[i] == '[' {
			return refuse("argument indexes ([n])")
		}
		if i < end && format[i] == '*' {
			return refuse("* widths")
		}
		v.wid, _, i = parsenum(format, i, end)
		if i+1 < end && format[i] == '.' {
			i++
			if format[i] == '[' {
				return refuse("argument indexes ([n])")
			}
			if format[i] == '*' {
				return refuse("* precisions")
			}
			v.prec, _, i = parsenum(format, i, end)
		}
		if i < end && format[i] == '[' {
			return refuse("argument indexes ([n])")
		}
		if i >= end {
			total += len("%!(NOVERB)")
			break
		}
		verb, size := utf8.DecodeRuneInString(format[i:])
		i += size
		v.verb = verb
		switch {
		case verb == '%':
			total++
		case argNum >= len(args):
			total += 16 // %!v(MISSING)
		default:
			n, err := valueBound(args[argNum], v, 0, limit-total)
			if err != nil {
				return 0, err
			}
			total += n
			argNum++
		}
	}
	if argNum < len(args) {
		total += len("%!(EXTRA )")
		for _, a := range args[argNum:] {
			if total > limit {
				break
			}
			n, err := valueBound(a, verbSpec{verb: 'v'}, 0, limit-total)
			if err != nil {
				return 0, err
			}
			total += n + 32 // ", " and the type name
		}
	}
	return total, nil
}

// parsenum is fmt's: the number at s[start:end], with the same overflow
// rule, so that a format is split into verbs as fmt splits it.
func parsenum(s string, start, end int) (num int, isnum bool, newi int) {
	if start >= end {
		return 0, false, end
	}
	for newi = start; newi < end && '0' <= s[newi] && s[newi] <= '9'; newi++ {
		if num > 1e6 || num < -1e6 {
			return 0, false, end
		}
		num = num*10 + int(s[newi]-'0')
		isnum = true
	}
	return num, isnum, newi
}

// valueBound returns an upper bound on the bytes fmt writes for v under
// spec, or a number over limit once it passes limit. Width and precision
// apply to each element of a list or object, as they do in fmt. The slack
// in each case covers fmt's prefixes, signs, exponents and "%!x(type=...)"
// for a verb that does not fit the value.
func valueBound(v any, s verbSpec, depth, limit int) (int, error) {
	if depth == 0 && s.verb == 'T' {
		return s.wid + 64, nil // a type name
	}
	switch x := v.(type) {
	case nil:
		return s.wid + 16, nil
	case bool:
		return s.wid + 32, nil
	case int, int64:
		return s.wid + s.prec + 80, nil
	case float64:
		return s.wid + s.prec + 400, nil // %f of 1e308 has 309 digits
	case complex128:
		return 2*(s.wid+s.prec+400) + 8, nil
	case string:
		return stringBound(len(x), s), nil
	case null:
		return stringBound(0, s), nil
	case []any:
		if depth == 0 && s.verb == 'p' {
			return s.wid + 64, nil // the address
		}
		total := 32
		for _, e := range x {
			if total > limit {
				break
			}
			n, err := valueBound(e, s, depth+1, limit-total)
			if err != nil {
				return 0, err
			}
			total += n + 2
		}
		return total, nil
	case map[string]any:
		if depth == 0 && s.verb == 'p' {
			return s.wid + 64, nil
		}
		total := 32
		for k, e := range x {
			if total > limit {
				break
			}
			n, err := valueBound(e, s, depth+1, limit-total)
			if err != nil {
				return 0, err
			}
			total += stringBound(len(k), s) + n + 3
		}
		return total, nil
	}
	return 0, fmt.Errorf("cannot format %s", kindOf(v))
}

// stringBound bounds a string of n bytes: %s and %v copy it (a precision
// only shortens it); %q and %#v quote it (4 bytes for a byte at worst, as
// \x00); % #x spells each byte as "0x00 "; another verb prints
// "%!d(string=...)", quoted again under %#w.
func stringBound(n int, s verbSpec) int {
	if s.verb == 's' || (s.verb == 'v' && !s.sharp) {
		return n + s.wid
	}
	return 5*n + s.wid + 32
}
