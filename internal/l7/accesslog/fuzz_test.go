package accesslog

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzFormat checks that whatever bytes a client puts in the method, host
// and path, a log line stays one line: JSON that decodes back to the same
// text (invalid UTF-8 aside), and a common line with no raw quote,
// backslash or control byte inside its fields.
func FuzzFormat(f *testing.F) {
	f.Add([]byte("GET"), []byte("www.example.com"), []byte("/index.html?q=1"))
	f.Add([]byte("POST"), []byte("a\"b"), []byte("/\r\n\x00\\\u2028\xff"))
	f.Add([]byte(""), []byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, method, host, path []byte) {
		e := entry()
		e.Method, e.Host, e.Path = method, host, path

		line := JSON.Append(nil, e)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("JSON line has an inner newline: %q", line)
		}
		var got struct{ Method, Host, Path string }
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		for _, c := range []struct {
			name      string
			got, want string
		}{{"method", got.Method, string(method)}, {"host", got.Host, string(host)}, {"path", got.Path, string(path)}} {
			if utf8.ValidString(c.want) && c.got != c.want {
				t.Errorf("%s: got %q back, want %q", c.name, c.got, c.want)
			}
		}

		cl := Common.Append(nil, e)
		if bytes.IndexByte(cl, '\n') != len(cl)-1 {
			t.Fatalf("common line has an inner newline: %q", cl)
		}
		// Fields are quoted: exactly the quotes the format writes.
		if n := bytes.Count(cl, []byte{'"'}); n != 8 {
			t.Fatalf("common line has %d quotes, want 8: %q", n, cl)
		}
		for _, c := range cl[:len(cl)-1] {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("common line has raw byte %#x: %q", c, cl)
			}
		}
	})
}
