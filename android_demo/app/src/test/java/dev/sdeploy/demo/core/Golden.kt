package dev.sdeploy.demo.core

import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Assume
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Base64

/**
 * Where the Python-made test data lives, from environment variables:
 *
 * - `SDEPLOY_GOLDEN_DIR`: a folder written by `sdeploy demo golden DIR` (golden.json);
 * - `SDEPLOY_MODEL_JSON`: a model.json written by `sdeploy bundle --app android`;
 * - `SDEPLOY_MODEL_EXPECT` (optional): `key=value` lines with the values that model.json must parse to.
 *
 * Without them the tests that need them are skipped (so `./gradlew test` works in a bare
 * checkout), unless `SDEPLOY_REQUIRE_GOLDEN=1`, which tests/test_android_demo.py sets: then a
 * missing variable fails instead of silently skipping.
 */
object Golden {
    const val GOLDEN_DIR_ENV = "SDEPLOY_GOLDEN_DIR"
    const val MODEL_JSON_ENV = "SDEPLOY_MODEL_JSON"
    const val MODEL_EXPECT_ENV = "SDEPLOY_MODEL_EXPECT"
    const val REQUIRE_ENV = "SDEPLOY_REQUIRE_GOLDEN"

    /** Max abs difference allowed between the Kotlin and Python input tensors. */
    const val TENSOR_TOLERANCE = 1e-5

    /** Max abs difference allowed between Kotlin and Python softmax probabilities. */
    const val PROBABILITY_TOLERANCE = 1e-6

    fun envFile(name: String, what: String): File {
        val value = System.getenv(name)
        if (value == null || value.length == 0) {
            val message = "$name is not set ($what)"
            if (System.getenv(REQUIRE_ENV) == "1") fail(message)
            Assume.assumeTrue("skipped: $message", false)
        }
        val file = File(value!!)
        assertTrue("$name=$value does not exist", file.exists())
        return file
    }

    private var cached: Pair<String, JsonObject>? = null

    /** golden.json of `$SDEPLOY_GOLDEN_DIR`, parsed with the app's own JSON reader. */
    fun load(): JsonObject {
        val dir = envFile(GOLDEN_DIR_ENV, "run `sdeploy demo golden DIR` and point it at DIR")
        val file = File(dir, "golden.json")
        assertTrue("$file does not exist: run `sdeploy demo golden $dir`", file.isFile)
        val previous = cached
        if (previous != null && previous.first == file.path) return previous.second
        val json = Json.parseObject(file.readText(Charsets.UTF_8), "golden.json")
        assertTrue("unexpected golden schema ${json.string("schema")}", json.string("schema").startsWith("sdeploy-golden/1"))
        cached = Pair(file.path, json)
        return json
    }

    private var cachedPixels: Pair<String, JsonObject>? = null

    /**
     * golden_pixels.json next to golden.json: the resized pixels rounded to 8 bits (numpy `rint`), the
     * input of a `pixels` model. golden.json has no such vectors, so tests/test_android_demo.py writes
     * them with the package's own `resize_and_crop`.
     */
    fun pixels(): JsonObject {
        val dir = envFile(GOLDEN_DIR_ENV, "run `sdeploy demo golden DIR` and point it at DIR")
        val file = File(dir, "golden_pixels.json")
        if (!file.isFile) {
            val message = "$file does not exist (tests/test_android_demo.py writes it)"
            if (System.getenv(REQUIRE_ENV) == "1") fail(message)
            Assume.assumeTrue("skipped: $message", false)
        }
        val previous = cachedPixels
        if (previous != null && previous.first == file.path) return previous.second
        val json = Json.parseObject(file.readText(Charsets.UTF_8), "golden_pixels.json")
        cachedPixels = Pair(file.path, json)
        return json
    }

    fun objects(list: List<Any?>, what: String): List<JsonObject> = list.mapIndexed { i, item ->
        @Suppress("UNCHECKED_CAST")
        val map = item as? Map<String, Any?> ?: throw AssertionError("golden.json: $what[$i] is not an object")
        JsonObject(map, "golden.json", "$what[$i].")
    }

    fun bytes(b64: String): ByteArray = Base64.getDecoder().decode(b64)

    fun floats32(b64: String): FloatArray {
        val buffer = ByteBuffer.wrap(bytes(b64)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        val out = FloatArray(buffer.remaining())
        buffer.get(out)
        return out
    }

    fun doubles64(b64: String): DoubleArray {
        val buffer = ByteBuffer.wrap(bytes(b64)).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer()
        val out = DoubleArray(buffer.remaining())
        buffer.get(out)
        return out
    }

    /** Largest |a - b| and where; NaN anywhere counts as infinitely far. */
    fun maxAbsDiff(actual: FloatArray, expected: FloatArray): Pair<Double, Int> {
        var worst = 0.0
        var at = -1
        for (i in expected.indices) {
            val d = Math.abs(actual[i].toDouble() - expected[i].toDouble())
            val diff = if (d.isNaN()) Double.POSITIVE_INFINITY else d
            if (diff > worst || at < 0) {
                worst = diff
                at = i
            }
        }
        return Pair(worst, at)
    }
}
