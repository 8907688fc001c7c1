// End-to-end check with the official JavaScript driver through the ingress:
//   node driver.js [--refused] <dns ip:port> <bolt port> <dbid>...
// Names are resolved through the ingress's DNS stub (as the VPC resolver
// would), the CA comes from NODE_EXTRA_CA_CERTS. Prints one JSON line per
// dbid: what the queries returned or, with --refused, the error the driver
// raised for a database the ingress refuses.
'use strict';
const dns = require('dns');
const args = process.argv.slice(2);
const refusedMode = args[0] === '--refused';
if (refusedMode) args.shift();
const [dnsAddr, port, ...dbids] = args;

const stub = new dns.Resolver();
stub.setServers([dnsAddr]);
const systemLookup = dns.lookup;
// net.connect looks dns.lookup up at call time, so the driver's sockets use this.
dns.lookup = (host, options, callback) => {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  if (!host.endsWith('.neo4j.io')) return systemLookup(host, options, callback);
  stub.resolve4(host, (err, addresses) => {
    if (err) return callback(err);
    if (options && options.all) return callback(null, addresses.map((address) => ({ address, family: 4 })));
    callback(null, addresses[0], 4);
  });
};

const neo4j = require('neo4j-driver');

async function check(dbid) {
  const driver = neo4j.driver(`neo4j+s://${dbid}.production-orch-0000.neo4j.io:${port}`, neo4j.auth.basic('neo4j', 'password'));
  try {
    const info = await driver.getServerInfo();
    const write = await driver.executeQuery('CREATE (n) RETURN instance() AS instance', {}, { routing: neo4j.routing.WRITE });
    const read = await driver.executeQuery('RETURN $x AS x, instance() AS instance', { x: 'hello' }, { routing: neo4j.routing.READ });
    return {
      dbid,
      protocol: info.protocolVersion,
      write: write.records[0].get('instance'),
      read: read.records[0].get('instance'),
      x: read.records[0].get('x'),
    };
  } finally {
    await driver.close();
  }
}

async function refused(dbid) {
  // A short retry budget: an unavailable database is retried, and the
  // test needs the error the retries end with, not the default 30 s.
  const driver = neo4j.driver(`neo4j+s://${dbid}.production-orch-0000.neo4j.io:${port}`, neo4j.auth.basic('neo4j', 'password'),
    { maxTransactionRetryTime: 2000 });
  try {
    await driver.executeQuery('RETURN 1');
    return { dbid, code: 'none', message: 'the query succeeded' };
  } catch (err) {
    // A failed discovery is reported as ServiceUnavailable, the server's
    // FAILURE as its cause.
    const cause = err.cause || {};
    return { dbid, code: err.code, message: err.message, causeCode: cause.code || '', causeMessage: cause.message || '',
      retryable: neo4j.isRetryableError(err) };
  } finally {
    await driver.close();
  }
}

(async () => {
  for (const dbid of dbids) console.log(JSON.stringify(await (refusedMode ? refused(dbid) : check(dbid))));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
