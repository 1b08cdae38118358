// Package rawttrpc speaks ttrpc frame by frame on a plain connection, for the
// requests Go's ttrpc client refuses to send (an oversized body, an even
// stream id, a payload that does not decode, a frame type nobody defined).
package rawttrpc

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

const (
	HeaderLength  = 10
	MaxLength     = 4 << 20 // ttrpc's messageLengthMax
	TypeRequest   = 0x1
	TypeResponse  = 0x2
	unknownType   = 0x9
	replyDeadline = 10 * time.Second
)

// Dial connects to a shim address as containerd writes it ("unix:///run/...") or a bare path.
func Dial(address string) (net.Conn, error) {
	return net.DialTimeout("unix", strings.TrimPrefix(address, "unix://"), 5*time.Second)
}

type Conn struct{ net.Conn }

// WriteFrame sends one frame whose header announces length bytes; body may be
// shorter only when the caller means to send the rest itself.
func (c Conn) WriteFrame(streamID uint32, typ byte, length uint32, body []byte) error {
	var h [HeaderLength]byte
	binary.BigEndian.PutUint32(h[0:4], length)
	binary.BigEndian.PutUint32(h[4:8], streamID)
	h[8] = typ
	if _, err := c.Write(h[:]); err != nil {
		return err
	}
	_, err := c.Write(body)
	return err
}

// Request sends a ttrpc Request envelope on streamID.
func (c Conn) Request(streamID uint32, req *ttrpc.Request) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	return c.WriteFrame(streamID, TypeRequest, uint32(len(b)), b)
}

// Unknown sends a frame of a type no ttrpc version defines, which a server must skip.
func (c Conn) Unknown(streamID uint32, body []byte) error {
	return c.WriteFrame(streamID, unknownType, uint32(len(body)), body)
}

// Response reads the next frame and decodes it as a Response, with its stream id.
func (c Conn) Response() (uint32, *ttrpc.Response, error) {
	if err := c.SetReadDeadline(time.Now().Add(replyDeadline)); err != nil {
		return 0, nil, err
	}
	var h [HeaderLength]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, fmt.Errorf("reading a response header: %w", err)
	}
	length, sid := binary.BigEndian.Uint32(h[0:4]), binary.BigEndian.Uint32(h[4:8])
	if h[8] != TypeResponse {
		return sid, nil, fmt.Errorf("frame type %d on stream %d, want a response", h[8], sid)
	}
	if length > MaxLength {
		return sid, nil, fmt.Errorf("response of %d bytes on stream %d is over the limit", length, sid)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c, body); err != nil {
		return sid, nil, fmt.Errorf("reading a response body: %w", err)
	}
	var res ttrpc.Response
	if err := proto.Unmarshal(body, &res); err != nil {
		return sid, nil, fmt.Errorf("decoding a response: %w", err)
	}
	return sid, &res, nil
}
