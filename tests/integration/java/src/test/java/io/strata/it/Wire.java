/* Wire.java - one request to stratad over a plain socket, encoded and decoded by the Java
 * client's own protocol classes: for APIs and versions that the public client API reaches
 * only through fallbacks (so a test can tell that the broker really serves them). */
package io.strata.it;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;

import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.requests.AbstractRequest;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.RequestHeader;
import org.apache.kafka.common.requests.ResponseHeader;

final class Wire {
    private Wire() {}

    static AbstractResponse roundTrip(AbstractRequest.Builder<?> builder, short version) throws Exception {
        AbstractRequest req = builder.build(version);
        ApiKeys key = req.apiKey();
        RequestHeader h = new RequestHeader(key, version, "strata-it-wire", 1);
        ByteBuffer b = req.serializeWithHeader(h);
        String[] hp = Strata.bootstrap().split(":");
        try (Socket s = new Socket(hp[0], Integer.parseInt(hp[1]))) {
            s.setSoTimeout(30000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            byte[] frame = new byte[b.remaining()];
            b.get(frame);
            out.writeInt(frame.length);
            out.write(frame);
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            byte[] resp = new byte[in.readInt()];
            in.readFully(resp);
            ByteBuffer rb = ByteBuffer.wrap(resp);
            ResponseHeader rh = ResponseHeader.parse(rb, key.responseHeaderVersion(version));
            if (rh.correlationId() != 1)
                throw new AssertionError("correlation id " + rh.correlationId());
            return AbstractResponse.parseResponse(key, new ByteBufferAccessor(rb), version);
        }
    }
}
