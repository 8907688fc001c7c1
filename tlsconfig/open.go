package tlsconfig

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Open builds what the tls section describes: the certificate store with
// its key exchange groups and PEM files (which must load), and the session
// ticket keys (random, or from keys_file). ACME starts later, through
// ManageACME, once its DNS-01 answers can be served.
func Open(ctx context.Context, c Config, logger *zap.Logger, reg prometheus.Registerer) (*Store, *TicketKeys, error) {
	certs := NewStore(logger.Named("tls"), NewMetrics(reg))
	groups, err := KeyExchangeGroups(c.KeyExchange)
	if err == nil {
		certs.SetKeyExchange(groups)
		err = certs.SetFiles(ctx, c.Certificates)
	}
	var tickets *TicketKeys
	if err == nil {
		tickets, err = NewTicketKeys(c.SessionTickets)
	}
	if err != nil {
		certs.Close()
		return nil, nil, err
	}
	return certs, tickets, nil
}
