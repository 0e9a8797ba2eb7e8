package mailsink

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// htmlPart returns the decoded text/html part of a message, or nil.
func htmlPart(raw []byte) []byte { return Part(raw, "text/html") }

// Part returns the first decoded part of a message whose media type is
// mediaType (such as text/plain), or nil, for tools and tests that read the
// messages the sink kept.
func Part(raw []byte, mediaType string) []byte {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	return findPart(mediaType, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func findPart(want, contentType, encoding string, body io.Reader) []byte {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return nil
			}
			if b := findPart(want, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); b != nil {
				return b
			}
		}
	}
	if mt != want {
		return nil
	}
	switch strings.ToLower(encoding) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil
	}
	return b
}
