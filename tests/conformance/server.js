// Node's http module as one of the conformance servers: "ok" to every request, 101 + one text frame to a
// websocket upgrade, 400 to what it cannot parse. Logs "<client port> <status> <method> <url>" to argv[3].
const http = require('http');
const fs = require('fs');
const log = (port, status, what) => fs.appendFileSync(process.argv[3], `${port} ${status} ${what}\n`);
const srv = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    log(req.socket.remotePort, 200, `${req.method} ${req.url}`);
    res.setHeader('Content-Length', 3);
    res.end(req.method === 'HEAD' ? undefined : 'ok\n');
  });
});
srv.on('clientError', (err, sock) => {
  log(sock.remotePort, 400, `clientError ${err.code}`);
  if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
});
srv.on('upgrade', (req, sock) => {
  log(sock.remotePort, 101, `${req.method} ${req.url}`);
  const msg = Buffer.from('{"phone":"+1 202 555 0143"}');
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
  sock.write(Buffer.concat([Buffer.from([0x81, msg.length]), msg]));
  sock.on('data', () => {});
  setTimeout(() => sock.end(Buffer.from([0x88, 0x00])), 300);
});
srv.listen(Number(process.argv[2]), '10.217.0.2');
