package safetensors

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"freelunch/core/dtype"
)

// The header is parsed by a small scanner written for its one shape of JSON rather than by
// encoding/json: the header is untrusted and up to 100 MB, and this parser allocates only what
// it keeps (names, shapes, metadata), detects duplicate keys, never recurses into values it does
// not expect (anything unexpected is an error), and knows the byte offset of every value for
// error messages. It accepts exactly RFC 8259 JSON; strings decode as encoding/json decodes
// them (a lone surrogate escape becomes U+FFFD).

// scanner is a position in a header's JSON.
type scanner struct {
	b      []byte // the header JSON, valid UTF-8
	pos    int
	file   string // file name for errors
	tensor string // tensor being parsed, for errors
}

// errf returns a FormatError at byte at of the JSON.
func (s *scanner) errf(at int, format string, args ...any) *FormatError {
	return formatErr(s.file, s.tensor, 8+int64(at), format, args...)
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	for s.pos < len(s.b) {
		switch c := s.b[s.pos]; c {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// syntax returns the error for an unexpected byte (or end) where want was expected.
func (s *scanner) syntax(want string) *FormatError {
	if s.peek() == 0 && s.pos >= len(s.b) {
		return s.errf(s.pos, "header JSON ends early, want %s", want)
	}
	r, _ := utf8.DecodeRune(s.b[s.pos:])
	return s.errf(s.pos, "header JSON: unexpected %q, want %s", r, want)
}

// expect consumes the byte c (after whitespace).
func (s *scanner) expect(c byte, want string) error {
	if s.peek() != c {
		return s.syntax(want)
	}
	s.pos++
	return nil
}

// more consumes a ',' (and reports true) or the closing byte end (and reports false).
func (s *scanner) more(end byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case end:
		s.pos++
		return false, nil
	}
	return false, s.syntax(fmt.Sprintf("',' or '%c'", end))
}

// str parses a string at the next position.
func (s *scanner) str() (string, error) {
	if s.peek() != '"' {
		return "", s.syntax("a string")
	}
	start := s.pos
	for i := start + 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.pos = i + 1
			return string(s.b[start+1 : i]), nil
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return "", s.errf(i, "header JSON: control character %#x in a string", c)
		}
	}
	return "", s.errf(start, "header JSON ends inside a string")
}

// strEscaped parses the string starting at start, which holds escapes.
func (s *scanner) strEscaped(start int) (string, error) {
	var out []byte
	b := s.b
	for i := start + 1; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return string(out), nil
		case c < 0x20:
			return "", s.errf(i, "header JSON: control character %#x in a string", c)
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b[i+2:])
			if !ok {
				return "", s.errf(i, "header JSON: invalid \\u escape in a string")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2, ok = hex4(b[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", s.errf(i, "header JSON: invalid escape %q in a string", "\\"+string(rune(e)))
		}
		i += 2
	}
	return "", s.errf(start, "header JSON ends inside a string")
}

// hex4 decodes the 4 hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans a JSON number at the next position and returns its text.
func (s *scanner) number() ([]byte, error) {
	b, start := s.b, s.pos
	i := start
	digits := func() int {
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return nil, s.errf(start, "header JSON: invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, s.errf(start, "header JSON: invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, s.errf(start, "header JSON: invalid number")
		}
	}
	s.pos = i
	return b[start:i], nil
}

// literal consumes the literal lit ("null", "true", "false") if it comes next.
func (s *scanner) literal(lit string) bool {
	if s.peek() == lit[0] && bytes.HasPrefix(s.b[s.pos:], []byte(lit)) {
		s.pos += len(lit)
		return true
	}
	return false
}

// describe names the value at the next position for an error message, without consuming it.
func (s *scanner) describe() string {
	save := s.pos
	defer func() { s.pos = save }()
	switch c := s.peek(); {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		if v, err := s.str(); err == nil {
			return "the string " + strconv.Quote(truncate(v, 64))
		}
		return "a malformed string"
	case c == '-' || '0' <= c && c <= '9':
		if v, err := s.number(); err == nil {
			return "the number " + truncate(string(v), 32)
		}
		return "a malformed number"
	case s.literal("null"):
		return "null"
	case s.literal("true"):
		return "true"
	case s.literal("false"):
		return "false"
	case s.pos >= len(s.b):
		return "missing (the JSON ends)"
	}
	r, _ := utf8.DecodeRune(s.b[s.pos:])
	return fmt.Sprintf("not a JSON value (%q)", r)
}

// parseHeader parses and validates the JSON header hdr of a file of the given total size.
func parseHeader(hdr []byte, size int64, name string) (*File, error) {
	if !utf8.Valid(hdr) {
		i := 0
		for i < len(hdr) {
			r, w := utf8.DecodeRune(hdr[i:])
			if r == utf8.RuneError && w == 1 {
				break
			}
			i += w
		}
		return nil, formatErr(name, "", 8+int64(i), "header is not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, formatErr(name, "", 8, "header does not start with '{': not a safetensors JSON header")
	}
	f := &File{Name: name, DataOffset: 8 + int64(len(hdr)), size: size, index: map[string]int{}}
	s := &scanner{b: hdr, pos: 1, file: name}
	seenMeta := false
	if s.peek() == '}' {
		s.pos++
	} else {
		for {
			s.tensor = ""
			s.peek()
			keyAt := s.pos
			key, err := s.str()
			if err != nil {
				return nil, err
			}
			if key != "__metadata__" {
				s.tensor = key
			}
			if err := s.expect(':', "':'"); err != nil {
				return nil, err
			}
			if key == "__metadata__" {
				if seenMeta {
					return nil, s.errf(keyAt, "duplicate key \"__metadata__\"")
				}
				seenMeta = true
				if f.Metadata, err = s.metadata(); err != nil {
					return nil, err
				}
			} else {
				if _, dup := f.index[key]; dup {
					return nil, s.errf(keyAt, "duplicate tensor name")
				}
				t, err := s.tensorInfo(key)
				if err != nil {
					return nil, err
				}
				f.index[key] = len(f.Tensors)
				f.Tensors = append(f.Tensors, t)
			}
			if more, err := s.more('}'); err != nil {
				return nil, err
			} else if !more {
				break
			}
		}
	}
	s.tensor = ""
	if s.peek(); s.pos < len(hdr) {
		return nil, s.errf(s.pos, "unexpected data %q after the header JSON object", truncate(string(hdr[s.pos:]), 16))
	}
	if err := f.checkLayout(size - 8 - int64(len(hdr))); err != nil {
		return nil, err
	}
	return f, nil
}

// metadata parses the value of __metadata__: null or an object of strings.
func (s *scanner) metadata() (map[string]string, error) {
	if s.literal("null") {
		return nil, nil
	}
	if s.peek() != '{' {
		return nil, s.errf(s.pos, "__metadata__ is %s, want an object of strings", s.describe())
	}
	s.pos++
	m := map[string]string{}
	if s.peek() == '}' {
		s.pos++
		return m, nil
	}
	for {
		s.peek()
		at := s.pos
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, s.errf(at, "__metadata__: duplicate key %q", truncate(k, 64))
		}
		if err := s.expect(':', "':'"); err != nil {
			return nil, err
		}
		if s.peek() != '"' {
			return nil, s.errf(s.pos, "__metadata__[%q] is %s, want a string", truncate(k, 64), s.describe())
		}
		if m[k], err = s.str(); err != nil {
			return nil, err
		}
		if more, err := s.more('}'); err != nil {
			return nil, err
		} else if !more {
			return m, nil
		}
	}
}

// tensorInfo parses one tensor entry {"dtype": ..., "shape": [...], "data_offsets": [s, e]}.
func (s *scanner) tensorInfo(name string) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	if s.peek() != '{' {
		return t, s.errf(s.pos, "entry is %s, want an object with dtype, shape and data_offsets", s.describe())
	}
	s.pos++
	var haveDType, haveShape, haveOffsets bool
	for s.peek() != '}' {
		at := s.pos
		key, err := s.str()
		if err != nil {
			return t, err
		}
		var have *bool
		switch key {
		case "dtype":
			have = &haveDType
		case "shape":
			have = &haveShape
		case "data_offsets":
			have = &haveOffsets
		default:
			return t, s.errf(at, "unknown key %q (want dtype, shape, data_offsets)", truncate(key, 64))
		}
		if *have {
			return t, s.errf(at, "duplicate key %q", key)
		}
		*have = true
		if err := s.expect(':', "':'"); err != nil {
			return t, err
		}
		switch key {
		case "dtype":
			if s.peek() != '"' {
				return t, s.errf(s.pos, "dtype is %s, want a string", s.describe())
			}
			at := s.pos
			v, err := s.str()
			if err != nil {
				return t, err
			}
			if t.DType, err = dtype.Parse(v); err != nil {
				return t, s.errf(at, "dtype %q unknown", truncate(v, 64))
			}
		case "shape":
			if t.Shape, err = s.ints("shape", -1); err != nil {
				return t, err
			}
		case "data_offsets":
			offs, err := s.ints("data_offsets", 2)
			if err != nil {
				return t, err
			}
			t.Start, t.End = offs[0], offs[1]
		}
		if more, err := s.more('}'); err != nil {
			return t, err
		} else if !more {
			s.pos-- // back onto the '}' for the loop condition
		} else if s.peek() == '}' {
			return t, s.syntax("a key after ','")
		}
	}
	end := s.pos
	s.pos++
	switch {
	case !haveDType:
		return t, s.errf(end, "missing dtype")
	case !haveShape:
		return t, s.errf(end, "missing shape")
	case !haveOffsets:
		return t, s.errf(end, "missing data_offsets")
	case t.Start > t.End:
		return t, s.errf(end, "data_offsets [%d, %d] end before they start", t.Start, t.End)
	}
	want, ok := byteSize(t.DType, t.Shape)
	if !ok {
		return t, s.errf(end, "shape %s of %v is too large (more than 2^63 bytes)", ShapeString(t.Shape), t.DType)
	}
	if got := t.End - t.Start; got != want {
		return t, s.errf(end, "data_offsets [%d, %d] span %d bytes, but shape %v of %v needs %d",
			t.Start, t.End, got, t.Shape, t.DType, want)
	}
	return t, nil
}

// ints parses an array of non-negative integers; want is its required length, or -1 for any.
func (s *scanner) ints(what string, want int) ([]int64, error) {
	if s.peek() != '[' {
		return nil, s.errf(s.pos, "%s is %s, want an array of non-negative integers", what, s.describe())
	}
	s.pos++
	v := []int64{}
	if s.peek() == ']' {
		s.pos++
	} else {
		for {
			at := s.pos
			if c := s.peek(); c != '-' && (c < '0' || c > '9') {
				return nil, s.errf(at, "%s[%d] is %s, want a non-negative integer", what, len(v), s.describe())
			}
			num, err := s.number()
			if err != nil {
				return nil, err
			}
			x, reason := parseUint63(num)
			if reason != "" {
				return nil, s.errf(at, "%s[%d] = %s is %s", what, len(v), truncate(string(num), 32), reason)
			}
			if want >= 0 && len(v) == want {
				return nil, s.errf(at, "%s has more than %d elements", what, want)
			}
			v = append(v, x)
			if more, err := s.more(']'); err != nil {
				return nil, err
			} else if !more {
				break
			}
		}
	}
	if want >= 0 && len(v) != want {
		return nil, s.errf(s.pos-1, "%s has %d elements, want %d", what, len(v), want)
	}
	return v, nil
}

// parseUint63 parses a JSON number that must be an integer in [0, 2^63); reason says why not.
func parseUint63(num []byte) (int64, string) {
	if num[0] == '-' {
		return 0, "negative"
	}
	var x uint64
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, "not an integer"
		}
		if x > (math.MaxInt64-uint64(c-'0'))/10 {
			return 0, "too large"
		}
		x = x*10 + uint64(c-'0')
	}
	return int64(x), ""
}
