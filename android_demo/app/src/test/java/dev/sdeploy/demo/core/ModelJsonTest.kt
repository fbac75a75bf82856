package dev.sdeploy.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.io.FileInputStream

/** model.json as `sdeploy bundle --app android` writes it, read the way MainActivity reads it. */
class ModelJsonTest {
    private fun bundled(): Pair<File, ModelInfo> {
        val file = Golden.envFile(Golden.MODEL_JSON_ENV, "a model.json written by `sdeploy bundle --app android`")
        return Pair(file, ModelInfo.parse(file.readText(Charsets.UTF_8)))
    }

    @Test
    fun bundledModelJsonParses() {
        val (file, info) = bundled()
        val kind = info.engineKind() // a format this app runs
        assertEquals(kind.format, info.format)
        assertTrue(info.schema, info.schema == ModelInfo.SCHEMA || info.schema == ModelInfo.SCHEMA_1)
        val size = info.preprocess.imgSize.toLong()
        val expectedShape = if (info.input.isNhwc) longArrayOf(1, size, size, 3) else longArrayOf(1, 3, size, size)
        assertArrayEquals(expectedShape, info.input.shapeForOneImage())
        assertEquals(info.numClasses.toLong(), info.output.shape[info.output.shape.size - 1])

        // The files the app loads are next to it, intact and consistent.
        val dir = file.absoluteFile.parentFile
        val labels = Labels.parse(File(dir, info.labelsFile).readText(Charsets.UTF_8), info.numClasses)
        assertEquals(info.numClasses, labels.size)
        val model = File(dir, info.modelFile)
        assertTrue("$model is missing", model.isFile)
        assertEquals("sha256 of $model", info.sha256, FileInputStream(model).use { Sha256.hex(it) })
        val selftest = info.selftestFile
        if (selftest != null) SelfTestSpec.parse(File(dir, selftest).readText(Charsets.UTF_8)).checkMatches(info)
    }

    /** Every `key=value` line of `$SDEPLOY_MODEL_EXPECT` (written by the pytest driver from the same dict). */
    @Test
    fun bundledModelJsonHasTheExpectedValues() {
        val (_, info) = bundled()
        val expectFile = Golden.envFile(Golden.MODEL_EXPECT_ENV, "key=value lines of the expected model.json fields")
        val expected = LinkedHashMap<String, String>()
        for (line in expectFile.readLines(Charsets.UTF_8)) {
            if (line.trim().length == 0) continue
            val eq = line.indexOf('=')
            expected[line.substring(0, eq)] = line.substring(eq + 1)
        }
        val p = info.preprocess
        val actual = mapOf(
            "schema" to info.schema,
            "arch" to info.arch,
            "format" to info.format,
            "engine" to info.engineKind().name,
            "model_file" to info.modelFile,
            "selftest_file" to (info.selftestFile ?: "null"),
            "labels_file" to info.labelsFile,
            "num_classes" to info.numClasses.toString(),
            "sha256" to info.sha256,
            "input.name" to info.input.name,
            "input.shape" to info.input.shape.joinToString(","),
            "input.dtype" to info.input.dtype,
            "input.kind" to info.input.kind,
            "input.layout" to info.input.layout,
            "output.name" to info.output.name,
            "output.shape" to info.output.shape.joinToString(","),
            "output.kind" to info.output.kind,
            "preprocess.img_size" to p.imgSize.toString(),
            "preprocess.resize_size" to p.resizeSize.toString(),
            "preprocess.interpolation" to p.interpolation,
            "preprocess.crop" to p.crop,
            "preprocess.color_order" to p.colorOrder,
            "preprocess.layout" to p.layout,
            "preprocess.resize" to p.resize
        )
        val numeric = mapOf(
            "preprocess.mean" to p.mean,
            "preprocess.std" to p.std,
            "preprocess.scale" to listOf(p.scale)
        )
        assertTrue("$expectFile is empty", expected.isNotEmpty())
        for ((key, value) in expected) {
            when {
                actual.containsKey(key) -> assertEquals("model.json $key", value, actual[key])
                numeric.containsKey(key) -> {
                    val want = value.split(",").map { it.toDouble() }
                    assertEquals("model.json $key", want, numeric[key]) // exact: repr floats round-trip
                }
                else -> fail("unknown expectation '$key' in $expectFile")
            }
        }
    }

    companion object {
        /** A schema-2 model.json with every optional key left out. */
        const val MINIMAL_V2 = """
        {"schema": "sdeploy-app-model/2", "arch": "v1_g3_x1_0", "format": "pte",
         "model_file": "model.pte", "num_classes": 10, "labels_file": "labels.txt",
         "input": {"name": "input", "shape": ["batch", 3, 40, 40], "dtype": "float32", "kind": "tensor", "layout": "NCHW"},
         "output": {"name": "logits", "shape": ["batch", 10], "kind": "logits"},
         "preprocess": {"img_size": 40, "resize_size": 46, "color_order": "BGR", "scale": 1.0,
                        "mean": [0, 0, 0], "std": [1, 1, 1], "future_key": {"ignored": [1, 2]}}}
        """
    }

    private val minimal = MINIMAL_V2

    @Test
    fun missingPreprocessKeysTakePythonDefaultsAndDynamicBatchBecomesOne() {
        val info = ModelInfo.parse(minimal)
        assertArrayEquals(longArrayOf(1, 3, 40, 40), info.input.shapeForOneImage())
        assertEquals(Dims.DYNAMIC, info.input.shape[0])
        assertEquals(InputContract(imgSize = 40, resizeSize = 46, colorOrder = "BGR", scale = 1.0,
            mean = listOf(0.0, 0.0, 0.0), std = listOf(1.0, 1.0, 1.0)), info.preprocess)
        assertEquals(null, info.sha256)
        assertEquals(null, info.selftestFile)
        assertEquals(InputContract(), InputContract.fromJson(Json.parseObject("{}")))
    }

    @Test
    fun inputKindsLayoutsAndOutputKinds() {
        val pixels = ModelInfo.parse(minimal
            .replace("\"shape\": [\"batch\", 3, 40, 40], \"dtype\": \"float32\", \"kind\": \"tensor\", \"layout\": \"NCHW\"",
                "\"shape\": [1, 40, 40, 3], \"dtype\": \"uint8\", \"kind\": \"pixels\"")
            .replace("\"kind\": \"logits\"", "\"kind\": \"probabilities\""))
        assertTrue(pixels.input.isPixels)
        assertEquals(InputSpec.NHWC, pixels.input.layout) // the default for pixels
        assertArrayEquals(longArrayOf(1, 40, 40, 3), pixels.input.shapeForOneImage())
        assertTrue(pixels.output.isProbabilities)

        val nhwc = ModelInfo.parse(minimal.replace("[\"batch\", 3, 40, 40], \"dtype\": \"float32\", \"kind\": \"tensor\", \"layout\": \"NCHW\"",
            "[1, 40, 40, 3], \"dtype\": \"float32\", \"kind\": \"tensor\", \"layout\": \"NHWC\""))
        assertTrue(nhwc.input.isNhwc)
        assertTrue(!nhwc.input.isPixels)

        // Schema 1 (the lite-interpreter app's files): no kind/layout, NCHW float logits.
        val v1 = ModelInfo.parse(minimal.replace("sdeploy-app-model/2", "sdeploy-app-model/1")
            .replace(", \"kind\": \"tensor\", \"layout\": \"NCHW\"", "").replace(", \"kind\": \"logits\"", ""))
        assertEquals(InputSpec.TENSOR, v1.input.kind)
        assertEquals(InputSpec.NCHW, v1.input.layout)
        assertEquals(OutputSpec.LOGITS, v1.output.kind)
    }

    private fun assertRejected(text: String, vararg fragments: String) {
        try {
            ModelInfo.parse(text)
            fail("accepted a bad model.json: $text")
        } catch (e: JsonException) {
            for (fragment in fragments) assertTrue("'${e.message}' lacks '$fragment'", (e.message ?: "").contains(fragment))
        }
    }

    @Test
    fun badModelJsonIsRejectedWithTheField() {
        assertRejected(minimal.replace("sdeploy-app-model/2", "sdeploy-app-model/3"), "schema", "sdeploy-app-model/3")
        assertRejected(minimal.replace("\"batch\", 3, 40, 40", "1, 3, 32, 32"), "input shape", "img_size 40")
        assertRejected(minimal.replace("\"layout\": \"NCHW\"", "\"layout\": \"NHWC\""), "input shape", "NHWC", "[1, 40, 40, 3]")
        assertRejected(minimal.replace("\"layout\": \"NCHW\"", "\"layout\": \"CHW\""), "input.layout", "CHW")
        assertRejected(minimal.replace("\"kind\": \"tensor\"", "\"kind\": \"image\""), "input.kind", "iOS only")
        assertRejected(minimal.replace("\"kind\": \"tensor\"", "\"kind\": \"pixels\""), "input.dtype", "uint8")
        assertRejected(minimal.replace("\"kind\": \"logits\"", "\"kind\": \"scores\""), "output.kind", "scores")
        assertRejected(minimal.replace("[\"batch\", 10]", "[1, 11]"), "output shape", "num_classes 10")
        assertRejected(minimal.replace("\"img_size\": 40,", "\"img_size\": 40, \"interpolation\": \"nearest\","),
            "interpolation", "nearest")
        assertRejected(minimal.replace("\"mean\": [0, 0, 0]", "\"mean\": [0, \"x\", 0]"), "preprocess.mean", "array of numbers")
        assertRejected(minimal.replace("\"num_classes\": 10", "\"num_classes\": \"10\""), "num_classes", "an integer")
        assertRejected(minimal.replace("\"labels_file\": \"labels.txt\",", ""), "labels_file is missing")
        assertRejected(minimal.replace("\"std\": [1, 1, 1]", "\"std\": [1, 0, 1]"), "std")
        assertRejected("[1, 2]", "JSON object")
    }
}
