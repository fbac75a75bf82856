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
        assertEquals(ModelInfo.SCHEMA, info.schema)
        assertEquals("torchscript-lite", info.format)
        assertEquals("model.ptl", info.modelFile)
        assertEquals("input", info.input.name)
        val size = info.preprocess.imgSize.toLong()
        assertArrayEquals(longArrayOf(1, 3, size, size), info.inputShape())
        assertEquals(listOf(1L, info.numClasses.toLong()), info.output.shape)

        // The files the app loads are next to it, intact and consistent.
        val dir = file.absoluteFile.parentFile
        val labels = Labels.parse(File(dir, info.labelsFile).readText(Charsets.UTF_8), info.numClasses)
        assertEquals(info.numClasses, labels.size)
        val model = File(dir, info.modelFile)
        assertTrue("$model is missing", model.isFile)
        assertEquals("sha256 of $model", info.sha256, FileInputStream(model).use { Sha256.hex(it) })
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
            "arch" to info.arch,
            "format" to info.format,
            "model_file" to info.modelFile,
            "labels_file" to info.labelsFile,
            "num_classes" to info.numClasses.toString(),
            "sha256" to info.sha256,
            "input.name" to info.input.name,
            "input.shape" to info.input.shape.joinToString(","),
            "input.dtype" to info.input.dtype,
            "output.name" to info.output.name,
            "output.shape" to info.output.shape.joinToString(","),
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

    private val minimal = """
        {"schema": "sdeploy-app-model/1", "arch": "v1_g3_x1_0", "format": "torchscript-lite",
         "model_file": "model.ptl", "num_classes": 10, "labels_file": "labels.txt",
         "input": {"name": "input", "shape": ["batch", 3, 40, 40], "dtype": "float32"},
         "output": {"name": "logits", "shape": ["batch", 10]},
         "preprocess": {"img_size": 40, "resize_size": 46, "color_order": "BGR", "scale": 1.0,
                        "mean": [0, 0, 0], "std": [1, 1, 1], "future_key": {"ignored": [1, 2]}}}
    """

    @Test
    fun missingPreprocessKeysTakePythonDefaultsAndDynamicBatchBecomesOne() {
        val info = ModelInfo.parse(minimal)
        assertArrayEquals(longArrayOf(1, 3, 40, 40), info.inputShape())
        assertEquals(TensorSpec.DYNAMIC, info.input.shape[0])
        assertEquals(InputContract(imgSize = 40, resizeSize = 46, colorOrder = "BGR", scale = 1.0,
            mean = listOf(0.0, 0.0, 0.0), std = listOf(1.0, 1.0, 1.0)), info.preprocess)
        assertEquals(null, info.sha256)
        assertEquals(InputContract(), InputContract.fromJson(Json.parseObject("{}")))
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
        assertRejected(minimal.replace("sdeploy-app-model/1", "sdeploy-app-model/2"), "schema", "sdeploy-app-model/2")
        assertRejected(minimal.replace("\"batch\", 3, 40, 40", "1, 3, 32, 32"), "input shape", "img_size 40")
        assertRejected(minimal.replace("\"img_size\": 40,", "\"img_size\": 40, \"interpolation\": \"nearest\","),
            "interpolation", "nearest")
        assertRejected(minimal.replace("\"mean\": [0, 0, 0]", "\"mean\": [0, \"x\", 0]"), "preprocess.mean", "array of numbers")
        assertRejected(minimal.replace("\"num_classes\": 10", "\"num_classes\": \"10\""), "num_classes", "an integer")
        assertRejected(minimal.replace("\"labels_file\": \"labels.txt\",", ""), "labels_file is missing")
        assertRejected(minimal.replace("\"std\": [1, 1, 1]", "\"std\": [1, 0, 1]"), "std")
        assertRejected("[1, 2]", "JSON object")
    }
}
