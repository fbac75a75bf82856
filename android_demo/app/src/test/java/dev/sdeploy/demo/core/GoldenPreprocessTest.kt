package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Locale

/** The Kotlin preprocessing against Python's `normalize(resize_and_crop(...))`, every image x every contract. */
class GoldenPreprocessTest {
    @Test
    fun everyImageAndContractMatchesPython() {
        val golden = Golden.load()
        val contractsJson = golden.obj("contracts")
        val contracts = LinkedHashMap<String, InputContract>()
        for (key in contractsJson.map.keys) contracts[key] = InputContract.fromJson(contractsJson.obj(key))
        val images = Golden.objects(golden.array("images"), "images")
        assertTrue("golden.json has only ${images.size} images", images.size >= 5)
        assertTrue("golden.json has only ${contracts.size} contracts", contracts.size >= 3)

        val failures = ArrayList<String>()
        var worst = 0.0
        var checked = 0
        for (image in images) {
            val name = image.string("name")
            val width = image.int("width")
            val height = image.int("height")
            val argb = ArgbImage.fromRgba(Golden.bytes(image.string("rgba_b64")), width, height)
            val tensors = image.obj("tensors")
            assertEquals("$name: tensors for other contracts than golden.json lists", contracts.keys, tensors.map.keys)
            for ((key, contract) in contracts) {
                val expected = Golden.floats32(tensors.obj(key).string("tensor_f32le_b64"))
                val actual = Preprocess.preprocess(argb.pixels, width, height, contract)
                checked++
                if (actual.size != expected.size) {
                    failures.add("$name/$key: ${actual.size} values, Python has ${expected.size}")
                    continue
                }
                val (diff, at) = Golden.maxAbsDiff(actual, expected)
                worst = Math.max(worst, diff)
                println(String.format(Locale.US, "preprocess %-15s %-17s %dx%d -> %d values, max |diff| %.3e",
                    name, key, width, height, expected.size, diff))
                if (!(diff <= Golden.TENSOR_TOLERANCE)) {
                    val plane = contract.imgSize * contract.imgSize
                    failures.add(String.format(Locale.US,
                        "%s/%s: max |diff| %.3e > %.0e at channel %d, y %d, x %d (kotlin %.8f, python %.8f)",
                        name, key, diff, Golden.TENSOR_TOLERANCE, at / plane, (at % plane) / contract.imgSize,
                        at % contract.imgSize, actual[at], expected[at]))
                }
            }
        }
        println(String.format(Locale.US, "preprocess: %d tensors checked, overall max |diff| %.3e", checked, worst))
        assertEquals(images.size * contracts.size, checked)
        assertTrue("Kotlin preprocessing differs from Python:\n" + failures.joinToString("\n"), failures.isEmpty())
    }

    @Test
    fun goldenContractsIncludeTheOfficialBgrOne() {
        val contracts = Golden.load().obj("contracts")
        val parsed = contracts.map.keys.map { InputContract.fromJson(contracts.obj(it)) }
        val bgr = parsed.filter { it.colorOrder == "BGR" }
        assertTrue("no BGR contract in golden.json", bgr.isNotEmpty())
        assertEquals(1.0, bgr[0].scale, 0.0)
        assertEquals(listOf(0.0, 0.0, 0.0), bgr[0].mean)
        assertTrue("no RGB contract in golden.json", parsed.any { it.colorOrder == "RGB" && it.scale == 1.0 / 255.0 })
    }
}
