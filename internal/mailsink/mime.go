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
func htmlPart(raw []byte) []byte {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	return findHTML(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func findHTML(contentType, encoding string, body io.Reader) []byte {
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
			if html := findHTML(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); html != nil {
				return html
			}
		}
	}
	if mt != "text/html" {
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
