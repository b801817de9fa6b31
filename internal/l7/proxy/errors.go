package proxy

import (
	"net/http"
	"strconv"
)

// builtinPage is the body of an error response without a configured page.
func builtinPage(status int) string {
	return strconv.Itoa(status) + " " + http.StatusText(status) + "\n"
}

// appendError appends a whole response made by the proxy: a configured
// page for 502, 503 and 504, a short text otherwise.
func appendError(dst []byte, s *snapshot, status int, closeConn, head bool) []byte {
	var body []byte
	ctype := "text/plain; charset=utf-8"
	switch status {
	case 502, 503, 504:
		body, ctype = s.pages[status-502], s.pageTypes[status-502]
	default:
		// Rare, and the connection closes after most of these: the
		// conversion's allocation is no concern.
		body = []byte(builtinPage(status))
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, ctype...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\nCache-Control: no-cache\r\n"...)
	if closeConn {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if !head {
		dst = append(dst, body...)
	}
	return dst
}
