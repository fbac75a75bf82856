package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

import java.io.InputStream
import java.security.MessageDigest

/** sha256 of a stream as lowercase hex, the form model.json's `sha256` uses. */
object Sha256 {
    fun hex(stream: InputStream): String {
        val digest = MessageDigest.getInstance("SHA-256")
        val buffer = ByteArray(1 shl 16)
        while (true) {
            val n = stream.read(buffer)
            if (n < 0) break
            digest.update(buffer, 0, n)
        }
        val out = StringBuilder()
        for (b in digest.digest()) {
            val v = b.toInt() and 0xFF
            out.append(HEX[v shr 4]).append(HEX[v and 0xF])
        }
        return out.toString()
    }

    private const val HEX = "0123456789abcdef"
}
