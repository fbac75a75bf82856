package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Locale

/**
 * The other input layouts model.json can ask for, against Python's golden vectors: NHWC float
 * tensors (golden.json's CHW tensors, transposed) and uint8 `pixels` (golden_pixels.json).
 */
class GoldenLayoutTest {
    private class Case(val name: String, val argb: ArgbImage, val key: String, val contract: InputContract, val golden: JsonObject)

    private fun cases(): List<Case> {
        val golden = Golden.load()
        val contractsJson = golden.obj("contracts")
        val out = ArrayList<Case>()
        for (image in Golden.objects(golden.array("images"), "images")) {
            val argb = ArgbImage.fromRgba(Golden.bytes(image.string("rgba_b64")), image.int("width"), image.int("height"))
            for (key in contractsJson.map.keys) {
                out.add(Case(image.string("name"), argb, key, InputContract.fromJson(contractsJson.obj(key)), image.obj("tensors").obj(key)))
            }
        }
        assertTrue("golden.json has only ${out.size} image x contract cases", out.size >= 15)
        return out
    }

    private fun spec(kind: String, layout: String, size: Int): InputSpec {
        val s = size.toLong()
        val shape = if (layout == InputSpec.NCHW) listOf(1L, 3L, s, s) else listOf(1L, s, s, 3L)
        return InputSpec("input", shape, if (kind == InputSpec.PIXELS) "uint8" else "float32", kind, layout)
    }

    @Test
    fun nhwcTensorsAreTheGoldenTensorsTransposed() {
        var worst = 0.0
        for (case in cases()) {
            val size = case.contract.imgSize
            val chw = Golden.floats32(case.golden.string("tensor_f32le_b64"))
            val nchw = TensorInput.fromImage(case.argb.pixels, case.argb.width, case.argb.height, spec("tensor", "NCHW", size), case.contract)
            val nhwc = TensorInput.fromImage(case.argb.pixels, case.argb.width, case.argb.height, spec("tensor", "NHWC", size), case.contract)
            assertEquals(null, nhwc.bytes)
            assertTrue(longArrayOf(1, size.toLong(), size.toLong(), 3).contentEquals(nhwc.shape))
            assertTrue(longArrayOf(1, 3, size.toLong(), size.toLong()).contentEquals(nchw.shape))
            val transposed = FloatArray(chw.size)
            val plane = size * size
            for (c in 0 until 3) for (i in 0 until plane) transposed[i * 3 + c] = chw[c * plane + i]
            val diff = Golden.maxAbsDiff(nhwc.floats!!, transposed).first
            worst = Math.max(worst, Math.max(diff, Golden.maxAbsDiff(nchw.floats!!, chw).first))
            assertTrue("${case.name}/${case.key} NHWC: max |diff| $diff", diff <= Golden.TENSOR_TOLERANCE)
        }
        println(String.format(Locale.US, "layout nhwc: max |diff| %.3e", worst))
    }

    @Test
    fun pixelInputsAreThePythonPixelsRoundedToEightBits() {
        val pixels = Golden.pixels().obj("images")
        var checked = 0
        var ambiguous = 0
        for (case in cases()) {
            val size = case.contract.imgSize
            val entry = pixels.obj(case.name).obj(case.key)
            val expected = Golden.bytes(entry.string("rgb_hwc_u8_b64"))
            val allowed = entry.array("ambiguous").map { JsonObject.asLong(it)!!.toInt() }.toSet()
            ambiguous += allowed.size
            val hwc = TensorInput.fromImage(case.argb.pixels, case.argb.width, case.argb.height, spec("pixels", "NHWC", size), case.contract)
            val chw = TensorInput.fromImage(case.argb.pixels, case.argb.width, case.argb.height, spec("pixels", "NCHW", size), case.contract)
            assertEquals(null, hwc.floats)
            val actual = hwc.bytes!!
            assertEquals("${case.name}/${case.key}: pixel count", expected.size, actual.size)
            val plane = size * size
            val wrong = ArrayList<String>()
            for (i in expected.indices) {
                if (actual[i] != expected[i] && i !in allowed) {
                    wrong.add("index $i: kotlin ${actual[i].toInt() and 0xFF}, python ${expected[i].toInt() and 0xFF}")
                }
                // CHW holds the same values, planar; both always RGB, whatever the contract's colour order.
                assertEquals(actual[i], chw.bytes!![(i % 3) * plane + i / 3])
            }
            assertTrue("${case.name}/${case.key}: ${wrong.size} pixels differ from Python's rint: ${wrong.take(5)}", wrong.isEmpty())
            checked++
        }
        println(String.format(Locale.US, "layout pixels: %d cases equal to Python's rounded pixels (%d ties allowed either way)", checked, ambiguous))
    }
}
