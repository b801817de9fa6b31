package accesslog

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
)

// Format is the layout of a log line.
type Format uint8

const (
	// Common is the Common Log Format (as Apache's and nginx's) followed by
	// what a load balancer adds: the Host, the service, the backend, the
	// request body bytes, and the wait (until the backend's response head)
	// and total times in milliseconds:
	//
	//	192.0.2.7 - - [21/Nov/2026:06:51:55 +0000] "GET /index.html HTTP/1.1" 200 5120 "www.example.com" "web" "10.0.0.11:80" 0 0.412 0.630
	Common Format = iota
	// JSON is one JSON object per line with the same fields.
	JSON
)

// ParseFormat reads "common" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "common", "":
		return Common, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("accesslog: unknown format %q; want common or json", s)
}

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "common"
}

// Append appends e as one line in format f, newline included. It does not
// allocate.
func (f Format) Append(dst []byte, e *proxy.Entry) []byte {
	if f == JSON {
		return appendJSON(dst, e)
	}
	return appendCommon(dst, e)
}

const clfTime = "02/Jan/2006:15:04:05 -0700"

func appendCommon(b []byte, e *proxy.Entry) []byte {
	if e.Client.IsValid() {
		b = e.Client.Addr().Unmap().AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, " - - ["...)
	b = e.Start.AppendFormat(b, clfTime)
	b = append(b, "] \""...)
	b = appendCLFString(b, e.Method)
	b = append(b, ' ')
	b = appendCLFString(b, e.Path)
	b = append(b, ' ')
	b = appendCLFString(b, e.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	if e.BytesOut == 0 {
		b = append(b, '-') // as CLF's %b
	} else {
		b = strconv.AppendInt(b, e.BytesOut, 10)
	}
	b = append(b, " \""...)
	b = appendCLFString(b, e.Host)
	b = append(b, "\" \""...)
	b = appendCLFString(b, e.Service)
	b = append(b, "\" \""...)
	if e.Backend == "" {
		b = append(b, '-')
	} else {
		b = appendCLFString(b, e.Backend)
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, ' ')
	b = appendMillis(b, e.Wait)
	b = append(b, ' ')
	b = appendMillis(b, e.Total)
	return append(b, '\n')
}

// appendCLFString copies s, writing bytes that could break the line or
// its quoting (controls, '"', '\\', non-ASCII) as \xHH, as Apache does.
func appendCLFString[T string | []byte](b []byte, s T) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendMillis writes d in milliseconds with three decimals.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := int64(d / time.Microsecond)
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func appendJSON(b []byte, e *proxy.Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Start.AppendFormat(b, jsonTime)
	b = append(b, `","client":"`...)
	if e.Client.IsValid() {
		b = e.Client.Addr().Unmap().AppendTo(b)
	}
	b = append(b, `","client_port":`...)
	b = strconv.AppendUint(b, uint64(e.Client.Port()), 10)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, e.Service)
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, e.Backend)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, e.BytesOut, 10)
	b = append(b, `,"wait_ms":`...)
	b = appendMillis(b, e.Wait)
	b = append(b, `,"total_ms":`...)
	b = appendMillis(b, e.Total)
	return append(b, "}\n"...)
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		// A rune is at most 4 bytes: the conversion of so short a []byte
		// to string stays on the stack.
		r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but line terminators in JavaScript.
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			for k := i; k < i+n; k++ {
				b = append(b, s[k])
			}
		}
		i += n
	}
	return append(b, '"')
}
