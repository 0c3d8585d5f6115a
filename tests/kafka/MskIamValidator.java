// The broker side of Amazon MSK IAM authentication, for tests: a
// SASL/OAUTHBEARER listener that accepts only tokens MSK would accept —
// a SigV4-presigned `kafka-cluster:Connect` URL, unexpired, for this
// region, whose signature verifies with the secret of its access key.
// The access key and secret come from the listener's JAAS options
// (accessKeyId, secretAccessKey, region).
package dev.wasmpipe.test;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

public class MskIamValidator implements AuthenticateCallbackHandler {
    private String accessKeyId;
    private String secretAccessKey;
    private String region;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        Map<String, ?> options = jaas.get(0).getOptions();
        accessKeyId = (String) options.get("accessKeyId");
        secretAccessKey = (String) options.get("secretAccessKey");
        region = (String) options.get("region");
    }

    @Override
    public void close() {}

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback c : callbacks) {
            if (!(c instanceof OAuthBearerValidatorCallback)) throw new UnsupportedCallbackException(c);
            OAuthBearerValidatorCallback v = (OAuthBearerValidatorCallback) c;
            try {
                v.token(validate(v.tokenValue()));
            } catch (Exception e) {
                v.error("invalid_token", null, null);
                System.err.println("MskIamValidator: rejected: " + e.getMessage());
            }
        }
    }

    private OAuthBearerToken validate(String token) throws Exception {
        String url = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
        URI uri = new URI(url);
        String host = "kafka." + region + ".amazonaws.com";
        if (!"https".equals(uri.getScheme()) || !host.equals(uri.getHost()) || !"/".equals(uri.getPath()))
            throw new Exception("not a presigned request to https://" + host + "/: " + url);
        TreeMap<String, String> params = new TreeMap<>();
        for (String pair : uri.getRawQuery().split("&")) {
            String[] kv = pair.split("=", 2);
            params.put(dec(kv[0]), kv.length > 1 ? dec(kv[1]) : "");
        }
        if (!"kafka-cluster:Connect".equals(params.get("Action"))) throw new Exception("Action is not kafka-cluster:Connect");
        if (!"AWS4-HMAC-SHA256".equals(params.get("X-Amz-Algorithm"))) throw new Exception("not SigV4");
        if (!"host".equals(params.get("X-Amz-SignedHeaders"))) throw new Exception("signed headers are not 'host'");
        String[] credential = params.get("X-Amz-Credential").split("/");
        if (credential.length != 5 || !credential[0].equals(accessKeyId) || !credential[2].equals(region)
                || !credential[3].equals("kafka-cluster") || !credential[4].equals("aws4_request"))
            throw new Exception("unexpected credential scope " + params.get("X-Amz-Credential"));
        String amzDate = params.get("X-Amz-Date");
        Instant signedAt = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
                .parse(amzDate, Instant::from);
        long expires = Long.parseLong(params.get("X-Amz-Expires"));
        Instant now = Instant.now();
        if (now.isAfter(signedAt.plusSeconds(expires)) || signedAt.isAfter(now.plusSeconds(300)))
            throw new Exception("expired or from the future: signed at " + amzDate);

        // The canonical request over every parameter but the signature and
        // the User-Agent the signers append after signing.
        String signature = params.remove("X-Amz-Signature");
        params.remove("User-Agent");
        StringBuilder query = new StringBuilder();
        for (Map.Entry<String, String> e : params.entrySet()) {
            if (query.length() > 0) query.append('&');
            query.append(enc(e.getKey())).append('=').append(enc(e.getValue()));
        }
        String canonical = "GET\n/\n" + query + "\nhost:" + host + "\n\nhost\n" + hex(sha256(new byte[0]));
        String scope = credential[1] + "/" + region + "/kafka-cluster/aws4_request";
        String toSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n"
                + hex(sha256(canonical.getBytes(StandardCharsets.UTF_8)));
        byte[] key = hmac(("AWS4" + secretAccessKey).getBytes(StandardCharsets.UTF_8), credential[1]);
        key = hmac(key, region);
        key = hmac(key, "kafka-cluster");
        key = hmac(key, "aws4_request");
        String expected = hex(hmac(key, toSign));
        if (!MessageDigest.isEqual(expected.getBytes(StandardCharsets.UTF_8),
                String.valueOf(signature).getBytes(StandardCharsets.UTF_8)))
            throw new Exception("signature does not verify");

        long startMs = signedAt.toEpochMilli();
        long lifetimeMs = startMs + expires * 1000;
        String principal = accessKeyId;
        return new OAuthBearerToken() {
            public String value() { return token; }
            public Set<String> scope() { return Set.of(); }
            public long lifetimeMs() { return lifetimeMs; }
            public String principalName() { return principal; }
            public Long startTimeMs() { return startMs; }
        };
    }

    private static String dec(String s) { return URLDecoder.decode(s, StandardCharsets.UTF_8); }

    // RFC 3986 unreserved characters stay; everything else is %XX.
    private static String enc(String s) {
        StringBuilder b = new StringBuilder();
        for (byte c : s.getBytes(StandardCharsets.UTF_8)) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '_' || c == '.' || c == '~') b.append((char) c);
            else b.append(String.format("%%%02X", c & 0xff));
        }
        return b.toString();
    }

    private static byte[] sha256(byte[] data) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(data);
    }

    private static byte[] hmac(byte[] key, String data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) s.append(String.format("%02x", x));
        return s.toString();
    }
}
