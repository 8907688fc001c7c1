package routing

// Service is one of the protocols the ingress serves, each on its own listener.
type Service uint8

// The services, in the order DESIGN.md lists their listeners.
const (
	HTTPS Service = iota
	Bolt
	HTTP
	Arrow
	NumServices // the number of services; not a service
)

var serviceNames = [NumServices]string{"https", "bolt", "http", "arrow"}

func (s Service) String() string {
	if s < NumServices {
		return serviceNames[s]
	}
	return "unknown"
}

// ParseService returns the service called name ("https", "bolt", "http", "arrow").
func ParseService(name string) (Service, bool) {
	for i, n := range serviceNames {
		if n == name {
			return Service(i), true
		}
	}
	return 0, false
}

// ServiceNames lists the valid service names, for error messages.
func ServiceNames() []string { return serviceNames[:] }
