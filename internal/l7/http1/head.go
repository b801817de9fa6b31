package http1

import (
	"net/netip"
	"strconv"
)

// Forwarding says what a proxy tells a backend about the client. A service
// builds the flags once; the proxy sets Client and TLS per connection.
type Forwarding struct {
	// Client is the address the request came from; invalid (for a client
	// on a Unix socket, say) is written as "unknown".
	Client netip.Addr
	// TLS: the client connection is TLS, so the original scheme is https.
	TLS bool
	// XForwarded adds X-Forwarded-For (appended to the client's own list,
	// as nginx's $proxy_add_x_forwarded_for does) and replaces
	// X-Forwarded-Proto and X-Forwarded-Host.
	XForwarded bool
	// XForwardedFor, XForwardedProto and XForwardedHost each do one third
	// of what XForwarded does, for a service that wants only some of them.
	XForwardedFor, XForwardedProto, XForwardedHost bool
	// Forwarded appends an RFC 7239 Forwarded element.
	Forwarded bool
	// RealIP replaces X-Real-IP with the client address.
	RealIP bool
}

// Conn is the connection directive a head writer adds.
type Conn uint8

const (
	// ConnDefault writes nothing: the HTTP/1.1 default, persistence.
	ConnDefault Conn = iota
	// ConnClose writes Connection: close.
	ConnClose
	// ConnKeepAlive writes Connection: keep-alive, which an HTTP/1.0 peer
	// needs to keep the connection.
	ConnKeepAlive
)

func (c Conn) String() string {
	switch c {
	case ConnDefault:
		return "default"
	case ConnClose:
		return "close"
	case ConnKeepAlive:
		return "keep-alive"
	}
	return "Conn(?)"
}

// AppendRequestHead appends the head to forward r to a backend and returns
// the extended slice; it allocates only to grow dst.
//
// The head is HTTP/1.1 whatever the client spoke, so a backend connection
// stays reusable. An absolute-form target becomes origin-form, and r.Host is
// written as the Host field, first. Hop-by-hop fields are dropped:
// Connection and every field it names, Keep-Alive, Proxy-Connection, TE
// ("TE: trailers" is kept, for gRPC), Trailer, Upgrade (unless r.Upgrade is
// set) and the received framing fields; framing is rewritten from
// r.Chunked and r.ContentLength, so a caller that re-frames the body sets
// those first. Expect: 100-continue is written from r.Expect100 (never for
// an HTTP/1.0 client, whose Expect RFC 9110 §10.1.1 says to ignore); a
// proxy that answers 100 Continue itself clears it. f may be nil to add no
// forwarding fields.
func AppendRequestHead(dst []byte, r *Request, f *Forwarding, conn Conn) []byte {
	var fw Forwarding
	if f != nil {
		fw = *f
	}
	if fw.XForwarded {
		fw.XForwardedFor, fw.XForwardedProto, fw.XForwardedHost = true, true, true
	}
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = appendOriginTarget(dst, r)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, "\r\n"...)

	for i := range r.nf {
		k := r.kinds[i]
		switch k &^ kindListed {
		case kindOther:
		case kindXForwardedFor:
			if fw.XForwardedFor {
				continue
			}
		case kindXForwardedProto:
			if fw.XForwardedProto {
				continue
			}
		case kindXForwardedHost:
			if fw.XForwardedHost {
				continue
			}
		case kindForwarded:
			if fw.Forwarded {
				continue
			}
		case kindXRealIP:
			if fw.RealIP {
				continue
			}
		default:
			// Host, framing and hop-by-hop fields: rewritten below or
			// not forwarded at all.
			continue
		}
		if k&kindListed != 0 {
			continue
		}
		dst = appendField(dst, r.fields[i].Name, r.fields[i].Value)
	}

	dst = appendFraming(dst, r.Chunked, r.ContentLength)
	if r.Expect100 {
		dst = append(dst, "Expect: 100-continue\r\n"...)
	}
	dst = appendConnection(dst, conn, r.Upgrade != nil, r.teTrailers)
	if r.Upgrade != nil {
		dst = appendField(dst, []byte("Upgrade"), r.Upgrade)
	}
	if r.teTrailers {
		dst = append(dst, "TE: trailers\r\n"...)
	}

	if fw.XForwardedFor {
		dst = append(dst, "X-Forwarded-For: "...)
		for i := range r.nf {
			if r.kinds[i] == kindXForwardedFor && len(r.fields[i].Value) > 0 {
				dst = append(dst, r.fields[i].Value...)
				dst = append(dst, ", "...)
			}
		}
		dst = appendAddr(dst, fw.Client)
		dst = append(dst, "\r\n"...)
	}
	if fw.XForwardedProto {
		dst = append(dst, "X-Forwarded-Proto: "...)
		dst = append(dst, scheme(fw.TLS)...)
		dst = append(dst, "\r\n"...)
	}
	if fw.XForwardedHost && len(r.Host) > 0 {
		dst = appendField(dst, []byte("X-Forwarded-Host"), r.Host)
	}
	if fw.Forwarded {
		dst = append(dst, "Forwarded: "...)
		for i := range r.nf {
			if r.kinds[i] == kindForwarded && len(r.fields[i].Value) > 0 {
				dst = append(dst, r.fields[i].Value...)
				dst = append(dst, ", "...)
			}
		}
		dst = append(dst, "for="...)
		dst = appendForwardedNode(dst, fw.Client)
		if len(r.Host) > 0 {
			dst = append(dst, ";host="...)
			dst = appendForwardedValue(dst, r.Host)
		}
		dst = append(dst, ";proto="...)
		dst = append(dst, scheme(fw.TLS)...)
		dst = append(dst, "\r\n"...)
	}
	if fw.RealIP && fw.Client.IsValid() {
		dst = append(dst, "X-Real-IP: "...)
		dst = fw.Client.Unmap().AppendTo(dst)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendResponseHead appends the head to forward r to a client and returns
// the extended slice; it allocates only to grow dst.
//
// The status line says HTTP/1.1 (RFC 9110 §6.2: a server sends its own
// version). Hop-by-hop fields are dropped as in AppendRequestHead, and
// framing is written from r.Body: Content-Length, Transfer-Encoding: chunked,
// or, for BodyUntilClose, Connection: close. A response without a body
// keeps its Content-Length (or chunked) when it answers HEAD or is a 304,
// where it describes the representation. A 101 keeps its Upgrade.
func AppendResponseHead(dst []byte, r *Response, conn Conn) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, r.Reason...)
	dst = append(dst, "\r\n"...)
	for i := range r.nf {
		k := r.kinds[i]
		switch k &^ kindListed {
		case kindOther, kindExpect, kindXForwardedFor, kindXForwardedProto, kindXForwardedHost, kindForwarded, kindXRealIP, kindHost:
			if k&kindListed != 0 {
				continue
			}
			dst = appendField(dst, r.fields[i].Name, r.fields[i].Value)
		}
	}
	switch r.Body {
	case BodyLength:
		dst = appendFraming(dst, false, r.ContentLength)
	case BodyChunked:
		dst = appendFraming(dst, true, -1)
	case BodyUntilClose:
		conn = ConnClose
	case BodyNone:
		if !r.Tunnel && (r.toHead || r.Status == 304) {
			dst = appendFraming(dst, r.Chunked, r.ContentLength)
		}
	}
	upgrade := r.Status == 101 && r.Upgrade != nil
	dst = appendConnection(dst, conn, upgrade, false)
	if upgrade {
		dst = appendField(dst, []byte("Upgrade"), r.Upgrade)
	}
	return append(dst, "\r\n"...)
}

func appendOriginTarget(dst []byte, r *Request) []byte {
	if r.Form != AbsoluteForm {
		return append(dst, r.Target...)
	}
	p := r.Target[r.pathStart:]
	switch {
	case len(p) == 0 && string(r.Method) == "OPTIONS":
		// RFC 9112 §3.2.4: an OPTIONS for the server as a whole.
		return append(dst, '*')
	case len(p) == 0 || p[0] == '?':
		dst = append(dst, '/')
	}
	return append(dst, p...)
}

func appendFraming(dst []byte, chunked bool, contentLength int64) []byte {
	switch {
	case chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case contentLength >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, contentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

func appendConnection(dst []byte, conn Conn, upgrade, te bool) []byte {
	if conn == ConnDefault && !upgrade && !te {
		return dst
	}
	dst = append(dst, "Connection: "...)
	sep := false
	add := func(tok string) {
		if sep {
			dst = append(dst, ", "...)
		}
		dst = append(dst, tok...)
		sep = true
	}
	switch conn {
	case ConnClose:
		add("close")
	case ConnKeepAlive:
		add("keep-alive")
	}
	if upgrade {
		add("upgrade")
	}
	if te {
		// RFC 9110 §10.1.4: TE is itself hop-by-hop and must be named.
		add("te")
	}
	return append(dst, "\r\n"...)
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(dst, "unknown"...)
	}
	return a.Unmap().AppendTo(dst)
}

// appendForwardedNode writes an RFC 7239 §6 node: IPv6 goes in brackets,
// and so in quotes, since neither ':' nor '[' is a token character.
func appendForwardedNode(dst []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(dst, "unknown"...)
	case a.Unmap().Is4():
		return a.Unmap().AppendTo(dst)
	}
	dst = append(dst, `"[`...)
	dst = a.AppendTo(dst)
	return append(dst, `]"`...)
}

// appendForwardedValue writes v as a token, or as a quoted-string when it is
// not one (a host with a port, an IPv6 literal).
func appendForwardedValue(dst, v []byte) []byte {
	if isToken(v) {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

func scheme(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}
