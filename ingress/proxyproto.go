package ingress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

// proxyPolicy is the compiled proxy_protocol section.
type proxyPolicy struct {
	mode    ProxyMode
	trusted []netip.Prefix
}

func newProxyPolicy(c ProxyProtocolConfig) (proxyPolicy, error) {
	var p proxyPolicy
	var err error
	if p.mode, err = ParseProxyMode(c.Mode); err != nil || p.mode == ProxyOff {
		return p, err
	}
	for _, s := range c.TrustedCIDRs {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("proxy_protocol.trusted_cidrs: %w", err)
		}
		p.trusted = append(p.trusted, pfx.Masked())
	}
	return p, nil
}

func (p proxyPolicy) trusts(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// errUntrustedSource refuses a connection that must carry a header but
// comes from outside trusted_cidrs.
var errUntrustedSource = errors.New("PROXY header required, but the source is not in proxy_protocol.trusted_cidrs")

// readProxyHeader reads the PROXY header of c, if the mode and the source
// call for one, under the deadline already set on c. From a trusted load
// balancer it takes the client's address and the private endpoint id; from
// anywhere else a header is refused, since it could claim any endpoint.
// Afterwards c reads through the header parser, which hands on the bytes it
// buffered past the header.
func (p proxyPolicy) readProxyHeader(c *conn) error {
	if p.mode == ProxyOff {
		return nil
	}
	trusted := p.trusts(c.Conn.RemoteAddr())
	if !trusted && p.mode == ProxyRequired {
		return errUntrustedSource
	}
	policy := proxyproto.REJECT
	switch {
	case trusted && p.mode == ProxyRequired:
		policy = proxyproto.REQUIRE
	case trusted:
		policy = proxyproto.USE
	}
	// No timeout of the library's own: the handshake deadline on c bounds
	// the header and the TLS handshake together.
	pc := proxyproto.NewConn(c.Conn, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(0))
	if _, err := pc.Read(nil); err != nil { // reads and checks the header, if any
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return err // a silent client, not a bad header: the caller tells them apart
		}
		return fmt.Errorf("PROXY header: %w", err)
	}
	c.Conn = pc
	h := pc.ProxyHeader()
	if h == nil {
		return nil
	}
	c.proxyHeader = h
	c.Conn = countingConn{Conn: pc, n: &c.afterHeader} // what the TLS handshake reads
	if h.Command.IsLocal() {
		c.lbHealthCheck = true // the load balancer's own probe: no client behind it
		return nil
	}
	tlvs, err := h.TLVs()
	if err != nil {
		return fmt.Errorf("PROXY header TLVs: %w", err)
	}
	c.endpoint = endpointID(tlvs)
	return nil
}

// endpointID names the private endpoint a connection came through, from
// the cloud load balancer's TLV: AWS VPC endpoint (0xEA/0x01), Azure
// Private Link LinkID (0xEE/0x01), GCP Private Service Connect (0xE0).
// Empty means public traffic.
func endpointID(tlvs []proxyproto.TLV) string {
	if id := tlvparse.FindAWSVPCEndpointID(tlvs); id != "" {
		return id
	}
	if id, ok := tlvparse.FindAzurePrivateEndpointLinkID(tlvs); ok {
		return fmt.Sprintf("azure:%d", id)
	}
	if id, ok := tlvparse.ExtractPSCConnectionID(tlvs); ok {
		return fmt.Sprintf("psc:%d", id)
	}
	return ""
}

// backendProxyHeader is the PROXY v2 header sent to a backend: the real
// client and the address it connected to, with the endpoint TLVs passed on.
func backendProxyHeader(c *conn) ([]byte, error) {
	src, dst := c.RemoteAddr(), c.LocalAddr()
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	if c.proxyHeader != nil && !c.lbHealthCheck {
		if tlvs, err := c.proxyHeader.TLVs(); err == nil {
			var keep []proxyproto.TLV
			for _, t := range tlvs {
				switch t.Type {
				case tlvparse.PP2_TYPE_AWS, tlvparse.PP2_TYPE_AZURE, tlvparse.PP2_TYPE_GCP:
					keep = append(keep, t)
				}
			}
			if err := h.SetTLVs(keep); err != nil {
				return nil, fmt.Errorf("PROXY header for the backend: %w", err)
			}
		}
	}
	b, err := h.Format()
	if err != nil {
		return nil, fmt.Errorf("PROXY header for the backend: %w", err)
	}
	return b, nil
}
