package expr

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEval(t *testing.T) {
	tests := []struct {
		src    string
		values []float64
		want   bool
	}{
		{"result < 0.01", []float64{0.005}, true},
		{"result < 0.01", []float64{0.01}, false},
		{"result <= 0.01", []float64{0.01}, true},
		{"result > 5", []float64{6}, true},
		{"result >= 5", []float64{5}, true},
		{"result == 1", []float64{1}, true},
		{"result != 1", []float64{1}, false},
		{"0.01 > result", []float64{0}, true},
		{"result < 1e-2", []float64{0.001}, true},
		{"result > -1.5", []float64{-1}, true},
		{"result < .5", []float64{0.4}, true},
		{"result > 0 && result < 1", []float64{0.5}, true},
		{"result > 0 && result < 1", []float64{1}, false},
		{"result < 0 || result > 1", []float64{2}, true},
		{"result < 0 || result > 1 && result < 2", []float64{3}, false}, // && binds tighter
		{"(result < 0 || result > 1) && result < 2", []float64{1.5}, true},
		{"!(result < 0.01)", []float64{0.5}, true},
		{"!!(result < 0.01)", []float64{0.5}, false},
		{"all(result < 0.01)", []float64{0.001, 0.002}, true},
		{"all(result < 0.01)", []float64{0.001, 0.2}, false},
		{"any(result > 0.05)", []float64{0.001, 0.2}, true},
		{"any(result > 0.05)", []float64{0.001, 0.002}, false},
		{"all(result >= 0 && result < 1) || any(result == 7)", []float64{7, 0.5}, true},
		{"all(result < 1)", []float64{0.5}, true},
		{"result > 1", []float64{math.Inf(1)}, true},
		{"  result\t<\n0.01  ", []float64{0}, true},
	}
	for _, tt := range tests {
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		got, err := e.Eval(tt.values)
		if err != nil {
			t.Errorf("%q over %v: %v", tt.src, tt.values, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%q over %v = %v, want %v", tt.src, tt.values, got, tt.want)
		}
		if e.String() != tt.src {
			t.Errorf("String() = %q, want %q", e.String(), tt.src)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	e, _ := Parse("result < 1")
	if _, err := e.Eval([]float64{1, 2}); !errors.Is(err, ErrManySeries) {
		t.Errorf("bare result over two series: got %v, want ErrManySeries", err)
	}
	if _, err := e.Eval(nil); !errors.Is(err, ErrNoValue) {
		t.Errorf("no values: got %v, want ErrNoValue", err)
	}
	// result outside all() is bare even when all() is also used.
	e, _ = Parse("all(result < 1) && result > 0")
	if _, err := e.Eval([]float64{0.5, 0.6}); !errors.Is(err, ErrManySeries) {
		t.Errorf("mixed: got %v, want ErrManySeries", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		col  int
		frag string
	}{
		{"", 1, "empty condition"},
		{"   ", 1, "empty condition"},
		{"result", 1, "must compare"},
		{"0.5", 1, "must compare"},
		{"result <", 9, "ends too early"},
		{"result < 0.01 &&", 17, "ends too early"},
		{"result = 1", 8, "compare with =="},
		{"result => 1", 8, "greater or equal is >="},
		{"result =< 1", 8, "less or equal is <="},
		{"result < 1 & result > 0", 12, "and is &&"},
		{"result < 1 | result > 0", 12, "or is ||"},
		{"result < 1 and result > 0", 12, "unexpected"},
		{"result < 1%", 10, "fraction"},
		{"result < 1x", 10, `"1x" is not a number`},
		{"result < 1.2.3", 10, "not a number"},
		{"result < -", 10, "not a number"},
		{"result - 1 < 0", 8, "arithmetic belongs in the query"},
		{"result * 100 < 1", 8, "arithmetic belongs in the query"},
		{"reslt < 1", 1, `unknown name "reslt"`},
		{"results < 1", 1, `did you mean "result"?`},
		{"Result < 1", 1, `did you mean "result"?`},
		{"ALL(result < 1)", 1, `did you mean "all"?`},
		{"result < NaN", 10, "no data"},
		{"(result < 1", 12, "expected ) to close the ( at column 1"},
		{"result < 1)", 11, "unexpected \")\""},
		{"0 < result < 1", 12, "do not chain"},
		{"1 < 2", 1, "does not depend on result"},
		{"result < 1 && 2", 15, "needs a comparison"},
		{"2 || result < 1", 1, "needs a comparison"},
		{"!result", 2, "! needs a comparison"},
		{"(result < 1) < 2", 14, "left side is a condition"},
		{"result < (result < 1)", 10, "right side is a condition"},
		{"all result < 1", 5, "expected ( after all"},
		{"all(result)", 5, "needs a comparison over result"},
		{"all(any(result < 1))", 5, "cannot be nested"},
		{"all(result < 1", 15, "expected ) to close all( at column 1"},
		{"result < 1e999", 10, "out of range"},
		{"result < 1 ~", 12, `unexpected character '~'`},
		{"result < 1 é", 12, `unexpected character 'é'`},
		{"result and", 8, "unexpected"},
		{strings.Repeat("(", 40) + "result < 1" + strings.Repeat(")", 40), 33, "nested too deeply"},
		{strings.Repeat("!", 40) + "(result < 1)", 33, "nested too deeply"},
		{"result < 1 || " + strings.Repeat("x", MaxLen), MaxLen + 1, "longer than"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): got %v, want a *SyntaxError", tt.src, err)
			continue
		}
		if se.Col != tt.col || !strings.Contains(se.Msg, tt.frag) {
			t.Errorf("Parse(%q): got %q, want column %d and %q", tt.src, err, tt.col, tt.frag)
		}
	}
}

func TestJSON(t *testing.T) {
	type holder struct{ C *Expr }
	e, _ := Parse("all(result < 0.01)")
	b, err := json.Marshal(holder{e})
	if err != nil {
		t.Fatal(err)
	}
	var h holder
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.C.Eval([]float64{0.5}); ok || h.C.String() != e.String() {
		t.Fatalf("round trip: %s → %+v", b, h.C)
	}
	if err := json.Unmarshal([]byte(`{"C":"result <"}`), &h); err == nil {
		t.Fatal("a bad condition unmarshalled")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"result < 0.01", "all(result < 0.01)", "any(result > 0.05) || result == 1",
		"!(result >= -1e-3 && result != 2)", "((result < 1))", "result = 1", "0 < result < 1",
		"all(any(result < 1))", "result < 1%", "\xff", "(((((", "result<.5e+3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > len(src)+1 || se.Msg == "" {
				t.Fatalf("Parse(%q): malformed error %#v", src, err)
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want %q", e.String(), src)
		}
		for _, vs := range [][]float64{{0}, {-1, 1}, {0.01, math.Inf(1), math.Inf(-1)}} {
			ok, err := e.Eval(vs)
			if err != nil && !errors.Is(err, ErrManySeries) {
				t.Fatalf("%q over %v: %v", src, vs, err)
			}
			// Negation flips the result of any condition.
			n, perr := Parse("!(" + src + ")")
			if perr != nil {
				if len(src)+3 > MaxLen || strings.Contains(perr.Error(), "nested too deeply") {
					continue
				}
				t.Fatalf("!(%s) does not parse: %v", src, perr)
			}
			nok, nerr := n.Eval(vs)
			if (err == nil) != (nerr == nil) || err == nil && ok == nok {
				t.Fatalf("%q = %v, %v; its negation = %v, %v", src, ok, err, nok, nerr)
			}
		}
	})
}

func BenchmarkEval(b *testing.B) {
	for _, bc := range []struct {
		name, src string
		values    []float64
	}{
		{"scalar", "result < 0.01", []float64{0.005}},
		{"compound", "(result >= 0 && result < 0.01) || result == 1", []float64{0.005}},
		{"all-100", "all(result < 0.01)", make([]float64, 100)},
	} {
		e, err := Parse(bc.src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Eval(bc.values); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("(result >= 0 && result < 0.01) || any(result == 1)"); err != nil {
			b.Fatal(err)
		}
	}
}
