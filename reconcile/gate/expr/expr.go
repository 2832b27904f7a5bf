// Package expr is the small condition language of a gate's success and
// failure conditions (issue 13): comparisons of numbers and of the query's
// result, joined with &&, || and !, grouped with parentheses.
//
//	result < 0.01
//	result >= 0.05 || (result > 0.02 && result != 1)
//	all(result < 0.01)        every series of a vector below 0.01
//	any(result > 0.05)        at least one series above 0.05
//
// result is the value of a scalar or of a vector with exactly one series.
// A vector of several series has no single value: a bare result over it is
// an evaluation error (ErrManySeries), and the condition must say how to
// reduce it with all(...) or any(...), inside which result is each series'
// value in turn. An empty result never reaches a condition: it is "no data",
// judged by the gate's no_data policy.
//
// The package has no dependencies, so the manifest parser and the gate
// evaluator share one grammar. A parsed Expr is immutable and safe for
// concurrent use; evaluating it does not allocate.
package expr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest condition accepted, in bytes.
const MaxLen = 1024

// maxDepth bounds nesting, so a hostile condition cannot exhaust the stack.
const maxDepth = 32

// ErrManySeries is returned by Eval when a bare result meets a vector of
// more than one series.
var ErrManySeries = errors.New("the query returned several series: a bare result needs one; reduce them with all(...) or any(...)")

// ErrNoValue is returned by Eval when there is no value at all (the caller
// should have applied its no_data policy first).
var ErrNoValue = errors.New("no value to evaluate")

// SyntaxError is a condition that does not parse, with the 1-based column
// (in bytes) where the problem is.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// op is a node's kind.
type op uint8

const (
	opNum    op = iota + 1 // number literal: num
	opResult               // result
	opLT
	opLE
	opGT
	opGE
	opEQ
	opNE
	opAnd
	opOr
	opNot
	opAll // all(a)
	opAny // any(a)
)

// node is one node of the tree; children are indexes into Expr.nodes.
type node struct {
	op   op
	a, b int32
	num  float64
}

// Expr is a parsed, type-checked condition.
type Expr struct {
	src   string
	nodes []node
	root  int32
	bare  bool // a result outside all/any
}

// String returns the condition as written.
func (e *Expr) String() string {
	if e == nil {
		return ""
	}
	return e.src
}

// MarshalText returns the source, so an Expr round-trips through JSON.
func (e *Expr) MarshalText() ([]byte, error) { return []byte(e.src), nil }

// UnmarshalText parses text.
func (e *Expr) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*e = *p
	return nil
}

// Parse parses and type-checks a condition.
func Parse(src string) (*Expr, error) {
	if len(src) > MaxLen {
		return nil, &SyntaxError{Col: MaxLen + 1, Msg: fmt.Sprintf("condition is longer than %d bytes", MaxLen)}
	}
	p := &parser{src: src}
	p.next()
	if p.tok.kind == tEOF {
		return nil, &SyntaxError{Col: 1, Msg: "empty condition (for example: result < 0.01)"}
	}
	root, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if err := p.bad(); err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errf("unexpected %s after a complete condition", p.tok.describe())
	}
	if p.typ(root) != tyBool {
		return nil, &SyntaxError{Col: 1, Msg: "a condition must compare: " + strings.TrimSpace(src) + " is a number (for example: result < 0.01)"}
	}
	return &Expr{src: src, nodes: p.nodes, root: root, bare: p.bare}, nil
}

// Eval evaluates the condition over values, the result's series (one for a
// scalar). NaN values must have been dropped by the caller.
func (e *Expr) Eval(values []float64) (bool, error) {
	if len(values) == 0 {
		return false, ErrNoValue
	}
	if e.bare && len(values) != 1 {
		return false, ErrManySeries
	}
	return e.eval(e.root, values, values[0]), nil
}

func (e *Expr) eval(i int32, values []float64, cur float64) bool {
	n := &e.nodes[i]
	switch n.op {
	case opLT:
		return e.num(n.a, cur) < e.num(n.b, cur)
	case opLE:
		return e.num(n.a, cur) <= e.num(n.b, cur)
	case opGT:
		return e.num(n.a, cur) > e.num(n.b, cur)
	case opGE:
		return e.num(n.a, cur) >= e.num(n.b, cur)
	case opEQ:
		return e.num(n.a, cur) == e.num(n.b, cur)
	case opNE:
		return e.num(n.a, cur) != e.num(n.b, cur)
	case opAnd:
		return e.eval(n.a, values, cur) && e.eval(n.b, values, cur)
	case opOr:
		return e.eval(n.a, values, cur) || e.eval(n.b, values, cur)
	case opNot:
		return !e.eval(n.a, values, cur)
	case opAll:
		for _, v := range values {
			if !e.eval(n.a, values, v) {
				return false
			}
		}
		return true
	case opAny:
		for _, v := range values {
			if e.eval(n.a, values, v) {
				return true
			}
		}
		return false
	}
	panic("expr: not a boolean node")
}

func (e *Expr) num(i int32, cur float64) float64 {
	n := &e.nodes[i]
	if n.op == opResult {
		return cur
	}
	return n.num
}

// Lexer.

type tokKind uint8

const (
	tEOF tokKind = iota
	tNum
	tIdent
	tLParen
	tRParen
	tCmp // text says which
	tAnd
	tOr
	tNot
	tBad
)

type token struct {
	kind tokKind
	text string
	col  int // 1-based
	num  float64
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of condition"
	case tNum:
		return "number " + t.text
	case tIdent:
		return strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src   string
	pos   int
	tok   token
	nodes []node
	bare  bool
	inAgg bool
}

func (p *parser) errf(format string, args ...any) error {
	return &SyntaxError{Col: p.tok.col, Msg: fmt.Sprintf(format, args...)}
}

func isIdent(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func (p *parser) next() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
	start := p.pos
	col := start + 1
	if p.pos >= len(p.src) {
		p.tok = token{kind: tEOF, col: col}
		return
	}
	c := p.src[p.pos]
	two := ""
	if p.pos+1 < len(p.src) {
		two = p.src[p.pos : p.pos+2]
	}
	switch {
	case two == "<=" || two == ">=" || two == "==" || two == "!=":
		p.pos += 2
		p.tok = token{kind: tCmp, text: two, col: col}
	case two == "&&":
		p.pos += 2
		p.tok = token{kind: tAnd, text: two, col: col}
	case two == "||":
		p.pos += 2
		p.tok = token{kind: tOr, text: two, col: col}
	case c == '<' || c == '>':
		p.pos++
		p.tok = token{kind: tCmp, text: string(c), col: col}
	case c == '!':
		p.pos++
		p.tok = token{kind: tNot, text: "!", col: col}
	case c == '(':
		p.pos++
		p.tok = token{kind: tLParen, text: "(", col: col}
	case c == ')':
		p.pos++
		p.tok = token{kind: tRParen, text: ")", col: col}
	case '0' <= c && c <= '9' || c == '.' || c == '-' || c == '+':
		p.lexNumber(col)
	case isIdent(c, true):
		for p.pos < len(p.src) && isIdent(p.src[p.pos], false) {
			p.pos++
		}
		p.tok = token{kind: tIdent, text: p.src[start:p.pos], col: col}
	default:
		r, size := utf8.DecodeRuneInString(p.src[start:])
		p.pos += size
		msg := fmt.Sprintf("unexpected character %q", r)
		switch c {
		case '=':
			switch {
			case strings.HasPrefix(p.src[start:], "=>"):
				msg += " (greater or equal is >=)"
			case strings.HasPrefix(p.src[start:], "=<"):
				msg += " (less or equal is <=)"
			default:
				msg += " (compare with ==)"
			}
		case '&':
			msg += " (and is &&)"
		case '|':
			msg += " (or is ||)"
		case '*', '/':
			msg += " (arithmetic belongs in the query; a condition compares numbers)"
		}
		p.tok = token{kind: tBad, text: msg, col: col}
	}
}

// lexNumber reads a decimal number: an optional sign, digits with an
// optional fraction, an optional exponent. No hex, no underscores, no
// NaN or Inf.
func (p *parser) lexNumber(col int) {
	s := p.src
	i := p.pos
	if s[i] == '-' || s[i] == '+' {
		i++
	}
	digits := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits > 0 && i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '-' || s[j] == '+') {
			j++
		}
		k := j
		for k < len(s) && '0' <= s[k] && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	text := s[p.pos:i]
	if digits == 0 {
		p.pos = max(i, p.pos+1)
		msg := fmt.Sprintf("%q is not a number", s[col-1:p.pos])
		if s[col-1] == '-' || s[col-1] == '+' {
			msg += " (arithmetic belongs in the query; a condition compares numbers)"
		}
		p.tok = token{kind: tBad, text: msg, col: col}
		return
	}
	if i < len(s) && (isIdent(s[i], false) || s[i] == '.') {
		j := i
		for j < len(s) && (isIdent(s[j], false) || s[j] == '.') {
			j++
		}
		p.pos = j
		msg := fmt.Sprintf("%q is not a number", s[col-1:j])
		if s[i] == '%' {
			msg += " (write a percentage as a fraction: 1% is 0.01)"
		}
		p.tok = token{kind: tBad, text: msg, col: col}
		return
	}
	if i < len(s) && s[i] == '%' {
		p.pos = i + 1
		p.tok = token{kind: tBad, text: fmt.Sprintf("%q: write a percentage as a fraction (1%% is 0.01)", s[col-1:p.pos]), col: col}
		return
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) {
		p.pos = i
		p.tok = token{kind: tBad, text: fmt.Sprintf("%q is out of range", text), col: col}
		return
	}
	p.pos = i
	p.tok = token{kind: tNum, text: text, col: col, num: v}
}

// Grammar (lowest precedence first):
//
//	or   = and { "||" and }
//	and  = not { "&&" not }
//	not  = "!" not | cmp
//	cmp  = atom [ ("<" | "<=" | ">" | ">=" | "==" | "!=") atom ]
//	atom = number | "result" | "(" or ")" | ("all" | "any") "(" or ")"

type ty uint8

const (
	tyNum ty = iota + 1
	tyBool
)

func (p *parser) typ(i int32) ty {
	switch p.nodes[i].op {
	case opNum, opResult:
		return tyNum
	}
	return tyBool
}

func (p *parser) add(n node) int32 {
	p.nodes = append(p.nodes, n)
	return int32(len(p.nodes) - 1)
}

func (p *parser) bad() error {
	if p.tok.kind == tBad {
		return &SyntaxError{Col: p.tok.col, Msg: p.tok.text}
	}
	return nil
}

func (p *parser) needBool(i int32, col int, what string) error {
	if p.typ(i) != tyBool {
		return &SyntaxError{Col: col, Msg: what + " needs a comparison on each side, not a number"}
	}
	return nil
}

func (p *parser) parseOr(depth int) (int32, error) {
	col := p.tok.col
	a, err := p.parseAnd(depth)
	if err != nil {
		return 0, err
	}
	for p.tok.kind == tOr {
		if err := p.needBool(a, col, "||"); err != nil {
			return 0, err
		}
		p.next()
		col = p.tok.col
		b, err := p.parseAnd(depth)
		if err != nil {
			return 0, err
		}
		if err := p.needBool(b, col, "||"); err != nil {
			return 0, err
		}
		a = p.add(node{op: opOr, a: a, b: b})
	}
	return a, nil
}

func (p *parser) parseAnd(depth int) (int32, error) {
	col := p.tok.col
	a, err := p.parseNot(depth)
	if err != nil {
		return 0, err
	}
	for p.tok.kind == tAnd {
		if err := p.needBool(a, col, "&&"); err != nil {
			return 0, err
		}
		p.next()
		col = p.tok.col
		b, err := p.parseNot(depth)
		if err != nil {
			return 0, err
		}
		if err := p.needBool(b, col, "&&"); err != nil {
			return 0, err
		}
		a = p.add(node{op: opAnd, a: a, b: b})
	}
	return a, nil
}

func (p *parser) parseNot(depth int) (int32, error) {
	if p.tok.kind != tNot {
		return p.parseCmp(depth)
	}
	if depth >= maxDepth {
		return 0, p.errf("nested too deeply (more than %d levels)", maxDepth)
	}
	p.next()
	col := p.tok.col
	a, err := p.parseNot(depth + 1)
	if err != nil {
		return 0, err
	}
	if p.typ(a) != tyBool {
		return 0, &SyntaxError{Col: col, Msg: "! needs a comparison, not a number"}
	}
	return p.add(node{op: opNot, a: a}), nil
}

var cmpOps = map[string]op{"<": opLT, "<=": opLE, ">": opGT, ">=": opGE, "==": opEQ, "!=": opNE}

func (p *parser) parseCmp(depth int) (int32, error) {
	col := p.tok.col
	a, err := p.parseAtom(depth)
	if err != nil {
		return 0, err
	}
	if p.tok.kind != tCmp {
		return a, nil
	}
	o := cmpOps[p.tok.text]
	opText, opCol := p.tok.text, p.tok.col
	if p.typ(a) != tyNum {
		return 0, &SyntaxError{Col: opCol, Msg: opText + " compares numbers; its left side is a condition"}
	}
	p.next()
	bcol := p.tok.col
	b, err := p.parseAtom(depth)
	if err != nil {
		return 0, err
	}
	if p.typ(b) != tyNum {
		return 0, &SyntaxError{Col: bcol, Msg: opText + " compares numbers; its right side is a condition"}
	}
	if p.tok.kind == tCmp {
		return 0, p.errf("comparisons do not chain: join them with && (for example: result > 0 && result < 1)")
	}
	if p.nodes[a].op == opNum && p.nodes[b].op == opNum {
		return 0, &SyntaxError{Col: col, Msg: "this comparison of two numbers does not depend on result"}
	}
	return p.add(node{op: o, a: a, b: b}), nil
}

func (p *parser) parseAtom(depth int) (int32, error) {
	if err := p.bad(); err != nil {
		return 0, err
	}
	if depth >= maxDepth {
		return 0, p.errf("nested too deeply (more than %d levels)", maxDepth)
	}
	t := p.tok
	switch t.kind {
	case tNum:
		p.next()
		return p.add(node{op: opNum, num: t.num}), nil
	case tLParen:
		p.next()
		i, err := p.parseOr(depth + 1)
		if err != nil {
			return 0, err
		}
		if err := p.bad(); err != nil {
			return 0, err
		}
		if p.tok.kind != tRParen {
			return 0, p.errf("expected ) to close the ( at column %d, found %s", t.col, p.tok.describe())
		}
		p.next()
		return i, nil
	case tIdent:
		switch t.text {
		case "result":
			p.next()
			if !p.inAgg {
				p.bare = true
			}
			return p.add(node{op: opResult}), nil
		case "all", "any":
			if p.inAgg {
				return 0, p.errf("%s(...) cannot be nested in all(...) or any(...)", t.text)
			}
			p.next()
			if err := p.bad(); err != nil {
				return 0, err
			}
			if p.tok.kind != tLParen {
				return 0, p.errf("expected ( after %s, found %s", t.text, p.tok.describe())
			}
			p.next()
			p.inAgg = true
			icol := p.tok.col
			i, err := p.parseOr(depth + 1)
			p.inAgg = false
			if err != nil {
				return 0, err
			}
			if err := p.bad(); err != nil {
				return 0, err
			}
			if p.tok.kind != tRParen {
				return 0, p.errf("expected ) to close %s( at column %d, found %s", t.text, t.col, p.tok.describe())
			}
			if p.typ(i) != tyBool {
				return 0, &SyntaxError{Col: icol, Msg: t.text + "(...) needs a comparison over result, for example " + t.text + "(result < 0.01)"}
			}
			p.next()
			o := opAll
			if t.text == "any" {
				o = opAny
			}
			return p.add(node{op: o, a: i}), nil
		}
		msg := fmt.Sprintf("unknown name %q: the value is result; all(...) and any(...) reduce a vector", t.text)
		switch strings.ToLower(t.text) {
		case "and":
			msg = "and is written &&"
		case "or":
			msg = "or is written ||"
		case "not":
			msg = "not is written !"
		case "nan", "inf", "infinity":
			msg = fmt.Sprintf("%s is not accepted: a NaN result is no data (the gate's no_data policy judges it)", t.text)
		case "result", "results", "resutl", "reslut", "value", "rsult", "resul", "reult", "resullt":
			msg += `; did you mean "result"?`
		case "all", "any":
			msg += fmt.Sprintf("; did you mean %q?", strings.ToLower(t.text))
		}
		return 0, p.errf("%s", msg)
	case tEOF:
		return 0, p.errf("the condition ends too early: expected a number, result, ( or all(/any(")
	}
	return 0, p.errf("unexpected %s: expected a number, result, ( or all(/any(", t.describe())
}
